package main

import (
	"reflect"
	"testing"

	_ "homelab/internal/golden" // every test package accepts go test ./... -update
)

func TestAModuleThatLagsIsRaisedToTheHighestBuilt(t *testing.T) {
	built := map[string]map[string]string{
		".":          {"golang.org/x/net": "v0.60.0", "k8s.io/api": "v0.35.3"},
		"lab/simkit": {"golang.org/x/net": "v0.62.0"},
		"lab/sim":    {"golang.org/x/net": "v0.62.0", "k8s.io/api": "v0.35.10"},
	}
	lag := lagging(built)
	want := []module{{"golang.org/x/net", "v0.62.0"}, {"k8s.io/api", "v0.35.10"}}
	if !reflect.DeepEqual(lag["."], want) {
		t.Errorf("the program should be raised to %v (semver order, not string order), got %v", want, lag["."])
	}
	if len(lag["lab/sim"]) != 0 || len(lag["lab/simkit"]) != 0 {
		t.Errorf("modules at the highest version lag nothing, got %v", lag)
	}
}

func TestTheProviderSimulatorKeepsTalosAtTheProvidersVersion(t *testing.T) {
	built := map[string]map[string]string{
		"lab/sim":           {"github.com/siderolabs/talos/pkg/machinery": "v1.13.9", "github.com/cosi-project/runtime": "v1.14.1", "golang.org/x/net": "v0.62.0"},
		"lab/talosprovider": {"github.com/siderolabs/talos/pkg/machinery": "v1.12.0", "github.com/cosi-project/runtime": "v1.12.0", "golang.org/x/net": "v0.60.0"},
	}
	lag := lagging(built)
	want := []module{{"golang.org/x/net", "v0.62.0"}}
	if !reflect.DeepEqual(lag["lab/talosprovider"], want) {
		t.Errorf("lab/talosprovider should be raised only outside Talos's modules: want %v, got %v", want, lag["lab/talosprovider"])
	}
}

func TestLabSimHoldsTheTalosModuleButNotItsMachinery(t *testing.T) {
	built := map[string]map[string]string{
		".":                 {"github.com/siderolabs/talos/pkg/machinery": "v1.13.10"},
		"lab/sim":           {"github.com/siderolabs/talos/pkg/machinery": "v1.13.9", "github.com/siderolabs/talos": "v1.13.0", "github.com/siderolabs/go-kubernetes": "v0.2.36"},
		"lab/talosprovider": {"github.com/siderolabs/talos": "v1.12.0", "github.com/siderolabs/go-kubernetes": "v0.2.28"},
	}
	built["."]["github.com/siderolabs/talos"] = "v1.13.6"
	built["."]["github.com/siderolabs/go-kubernetes"] = "v0.2.38"
	want := []module{{"github.com/siderolabs/talos/pkg/machinery", "v1.13.10"}}
	if got := lagging(built)["lab/sim"]; !reflect.DeepEqual(got, want) {
		t.Errorf("lab/sim follows the machinery and holds the Talos module and go-kubernetes: want %v, got %v", want, got)
	}
}

func TestAHeldModuleThatMovesIsReported(t *testing.T) {
	before := map[string]map[string]string{"lab/talosprovider": {"github.com/siderolabs/talos/pkg/machinery": "v1.12.0", "golang.org/x/net": "v0.60.0"}}
	after := map[string]map[string]string{"lab/talosprovider": {"github.com/siderolabs/talos/pkg/machinery": "v1.13.0-beta.0", "golang.org/x/net": "v0.62.0"}}
	got := movedHeld(before, after)
	want := []string{"lab/talosprovider: github.com/siderolabs/talos/pkg/machinery v1.12.0 -> v1.13.0-beta.0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("only the held module's move is an error: want %v, got %v", want, got)
	}
}

func TestAVersionRequiredHigherIsLeftToGoGet(t *testing.T) {
	// go get's words when a pin is below what another module requires (cmd/go/internal/modget).
	out := "go: downloading k8s.io/gengo/v2 v2.0.0-20250604051438-85fd79dbfd9f\n" +
		"go: k8s.io/apiextensions-apiserver@v0.35.3 requires k8s.io/gengo/v2@v2.0.0-20250922181213-ec3ebc5fd46b, not k8s.io/gengo/v2@v2.0.0-20250604051438-85fd79dbfd9f\n"
	if got, want := conflicts(out), []string{"k8s.io/gengo/v2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("want the pin of %v dropped, got %v", want, got)
	}
}
