// Command pulumi-resource-kubernetes simulates the Kubernetes provider (pulumi-kubernetes 4.33.0)
// for the lab, as far as the program needs it: objects applied through the generic
// CustomResource (CRDs, pools, applications), which need the API server up and their CRD installed,
// and helm/v4 Chart components, which become ready at once and bring their CRDs and DaemonSets.
package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"

	"homelab/internal/lab/labstate"
	"homelab/internal/lab/simprov"
)

// crdOf names the CRD an object's kind needs.
var crdOf = map[string]string{
	"CiliumLoadBalancerIPPool":   "ciliumloadbalancerippools.cilium.io",
	"CiliumL2AnnouncementPolicy": "ciliuml2announcementpolicies.cilium.io",
	"OnePasswordItem":            "onepassworditems.onepassword.com",
	"Application":                "applications.argoproj.io",
}

// chartCRDs are the CRDs each chart brings.
var chartCRDs = map[string][]string{
	"cilium":  {"ciliumloadbalancerippools.cilium.io", "ciliuml2announcementpolicies.cilium.io"},
	"connect": {"onepassworditems.onepassword.com"},
	"argo-cd": {"applications.argoproj.io"},
}

func main() {
	object := &simprov.Resource{
		Replaces: []string{"apiVersion", "kind"},
		Create: func(r simprov.Request) (string, resource.PropertyMap, error) {
			out, err := applyObject(r)
			return objectName(r.News), out, err
		},
		Update: applyObject,
		Delete: func(r simprov.Request) error {
			labstate.Log(labstate.Dir(), labstate.Event{Actor: "kubernetes", Op: "delete", Detail: simprov.Str(r.OldInputs, "kind") + "/" + objectName(r.OldInputs)})
			return nil
		},
	}
	simprov.Main(simprov.Provider{
		Name: "kubernetes", Version: "4.33.0",
		Resources: map[string]simprov.Resource{},
		Fallback:  object,
		Construct: construct,
	})
}

func objectName(m resource.PropertyMap) string {
	meta := m["metadata"]
	if meta.IsObject() {
		return simprov.Str(meta.ObjectValue(), "name")
	}
	return ""
}

func applyObject(r simprov.Request) (resource.PropertyMap, error) {
	dir := labstate.Dir()
	kind, name := simprov.Str(r.News, "kind"), objectName(r.News)
	var opErr error
	err := labstate.Update(dir, func(s *labstate.State) error {
		if !s.Bootstrapped {
			opErr = fmt.Errorf("the Kubernetes API server is unreachable")
			return nil
		}
		if crd, ok := crdOf[kind]; ok && !s.CRDs[crd] {
			opErr = fmt.Errorf("no matches for kind %q in version %q: the CRD %s is not installed", kind, simprov.Str(r.News, "apiVersion"), crd)
			return nil
		}
		if kind == "CustomResourceDefinition" {
			s.CRDs[name] = true
		}
		s.Objects[kind+"/"+name] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if opErr != nil {
		labstate.Log(dir, labstate.Event{Actor: "kubernetes", Op: "apply-refused", Detail: kind + "/" + name + ": " + opErr.Error()})
		return nil, opErr
	}
	labstate.Log(dir, labstate.Event{Actor: "kubernetes", Op: "apply", Detail: kind + "/" + name})
	return r.News.Copy(), nil
}

type chart struct {
	pulumi.ResourceState
}

// construct installs a helm/v4 Chart: the chart is ready at once, with its CRDs and DaemonSets.
func construct(ctx *pulumi.Context, typ, name string, inputs provider.ConstructInputs, options pulumi.ResourceOption) (*provider.ConstructResult, error) {
	c := &chart{}
	if err := ctx.RegisterComponentResource(typ, name, c, options); err != nil {
		return nil, err
	}
	m, err := inputs.Map()
	if err != nil {
		return nil, err
	}
	chartName, version := plain(m["chart"]), plain(m["version"])
	if !ctx.DryRun() {
		dir := labstate.Dir()
		var opErr error
		var changed bool
		err := labstate.Update(dir, func(s *labstate.State) error {
			if !s.Bootstrapped {
				opErr = fmt.Errorf("the Kubernetes API server is unreachable")
				return nil
			}
			if chartName == "cilium" {
				for _, crd := range []string{"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"} {
					if !s.CRDs[crd] {
						labstate.Log(dir, labstate.Event{Actor: "kubernetes", Op: "cilium-without-gateway-api", Detail: crd})
					}
				}
			}
			changed = s.Charts[chartName] != version
			s.Charts[chartName] = version
			for _, crd := range chartCRDs[chartName] {
				s.CRDs[crd] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if opErr != nil {
			return nil, opErr
		}
		if changed {
			labstate.Log(dir, labstate.Event{Actor: "kubernetes", Op: "chart", Detail: chartName + " " + version})
		}
	}
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"resources": pulumi.Array{}}); err != nil {
		return nil, err
	}
	return provider.NewConstructResult(c)
}

// plain resolves an input to its string value.
func plain(in pulumi.Input) string {
	if in == nil {
		return ""
	}
	res, err := internals.UnsafeAwaitOutput(context.Background(), pulumi.ToOutput(in))
	if err != nil || !res.Known {
		return ""
	}
	return strings.TrimSpace(fmt.Sprint(res.Value))
}
