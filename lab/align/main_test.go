package main

import (
	"reflect"
	"testing"
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
