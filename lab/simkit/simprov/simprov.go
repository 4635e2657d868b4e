// Package simprov is the scaffolding of the lab's provider simulators: a Pulumi resource provider
// server whose resources and functions are plain Go handlers. Check accepts the inputs as they
// are; Diff compares inputs and asks for a replacement only where the simulated provider would.
package simprov

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Request is one resource operation.
type Request struct {
	Type, Name, ID string
	// Olds are the previous outputs and OldInputs the previous inputs (updates and deletes).
	Olds, OldInputs resource.PropertyMap
	// News are the new inputs (creates and updates).
	News    resource.PropertyMap
	Preview bool
	// Ctx is the operation's context: it ends when the engine cancels the operation or goes away.
	Ctx context.Context
	// Status logs an ephemeral status line on the resource, as a provider's LogStatus does (the
	// engine shows it in the progress display and its event stream). Never nil.
	Status func(msg string)
}

// Resource simulates one resource type.
type Resource struct {
	// Replaces lists the inputs whose change replaces the resource.
	Replaces []string
	// ReplaceIf, when set, decides for one changed input whether the change replaces the resource
	// (for providers whose plan modifiers compare values, such as a version downgrade).
	ReplaceIf func(key string, old, new resource.PropertyValue) bool
	// Plan, when set, names outputs the provider's plan changes although no input did (a plan
	// modifier that renews a certificate near expiry): the resource is then updated.
	Plan func(olds, news resource.PropertyMap) []string
	// Read, when set, answers a read: an import (no previous outputs) or a refresh.
	Read   func(r Request) (id string, outputs, inputs resource.PropertyMap, err error)
	Create func(r Request) (id string, outputs resource.PropertyMap, err error)
	// Update defaults to returning the new inputs as outputs.
	Update func(r Request) (resource.PropertyMap, error)
	// Delete defaults to doing nothing.
	Delete func(r Request) error
}

// Provider simulates one provider plugin.
type Provider struct {
	Name, Version string
	Resources     map[string]Resource
	// Fallback serves every resource type not in Resources, if set.
	Fallback  *Resource
	Functions map[string]func(args resource.PropertyMap) (resource.PropertyMap, error)
	// Construct builds a remote component.
	Construct provider.ConstructFunc
	// Configure receives the provider's configuration (its inputs), when the engine configures it.
	Configure func(args resource.PropertyMap) error
	// ReplaceConfig, when set, decides which of the changed configuration keys replace the
	// provider (and with it, in the engine, every resource it manages); by default none do.
	ReplaceConfig func(olds, news resource.PropertyMap, changed []string) []string
}

// Main serves the provider; it is a plugin binary's main.
func Main(p Provider) {
	err := provider.Main(p.Name, func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &server{p: p, host: host}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type server struct {
	pulumirpc.UnimplementedResourceProviderServer
	p    Provider
	host *provider.HostClient
}

var in = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true}
var out = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true}

func unmarshal(s *structpb.Struct) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(s, in)
}

func marshal(m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, out)
}

func typeOf(urn string) (string, string) {
	u := resource.URN(urn)
	return string(u.Type()), u.Name()
}

func (s *server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: s.p.Version}, nil
}

func (s *server) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: "{}"}, nil
}

func (s *server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) DiffConfig(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	resp, err := s.diff(req, nil)
	if err != nil || s.p.ReplaceConfig == nil || resp.Changes != pulumirpc.DiffResponse_DIFF_SOME {
		return resp, err
	}
	olds, news, err := oldsNews(req)
	if err != nil {
		return nil, err
	}
	resp.Replaces = s.p.ReplaceConfig(olds, news, resp.Diffs)
	return resp, nil
}

// oldsNews are a diff's old inputs (its old outputs when the state has no inputs) and new inputs.
func oldsNews(req *pulumirpc.DiffRequest) (olds, news resource.PropertyMap, err error) {
	if olds, err = unmarshal(req.GetOldInputs()); err != nil {
		return nil, nil, err
	}
	if len(olds) == 0 {
		if olds, err = unmarshal(req.GetOlds()); err != nil {
			return nil, nil, err
		}
	}
	news, err = unmarshal(req.GetNews())
	return olds, news, err
}

func (s *server) Configure(_ context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	if s.p.Configure != nil {
		args, err := unmarshal(req.GetArgs())
		if err != nil {
			return nil, err
		}
		if err := s.p.Configure(args); err != nil {
			return nil, err
		}
	}
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true}, nil
}

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	typ, _ := typeOf(req.GetUrn())
	res, _ := s.resource(typ)
	resp, err := s.diffWith(req, res.Replaces, res.ReplaceIf)
	if err != nil || res.Plan == nil {
		return resp, err
	}
	olds, err := unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	for _, k := range res.Plan(olds, news) {
		if !slices.Contains(resp.Diffs, k) {
			resp.Diffs = append(resp.Diffs, k)
		}
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return resp, nil
}

func (s *server) resource(typ string) (Resource, bool) {
	if res, ok := s.p.Resources[typ]; ok {
		return res, true
	}
	if s.p.Fallback != nil {
		return *s.p.Fallback, true
	}
	return Resource{}, false
}

func (s *server) diff(req *pulumirpc.DiffRequest, replaceKeys []string) (*pulumirpc.DiffResponse, error) {
	return s.diffWith(req, replaceKeys, nil)
}

func (s *server) diffWith(req *pulumirpc.DiffRequest, replaceKeys []string, replaceIf func(string, resource.PropertyValue, resource.PropertyValue) bool) (*pulumirpc.DiffResponse, error) {
	olds, news, err := oldsNews(req)
	if err != nil {
		return nil, err
	}
	d := olds.Diff(news, func(k resource.PropertyKey) bool {
		for _, ig := range req.GetIgnoreChanges() {
			if string(k) == ig {
				return true
			}
		}
		return false
	})
	if d == nil || !d.AnyChanges() {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
	}
	var diffs, replaces []string
	for _, k := range d.ChangedKeys() {
		diffs = append(diffs, string(k))
		for _, r := range replaceKeys {
			if string(k) == r {
				replaces = append(replaces, r)
			}
		}
		if replaceIf != nil && replaceIf(string(k), olds[k], news[k]) {
			replaces = append(replaces, string(k))
		}
	}
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: diffs, Replaces: replaces}, nil
}

func (s *server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	typ, name := typeOf(req.GetUrn())
	res, ok := s.resource(typ)
	if !ok {
		return nil, fmt.Errorf("lab %s simulator: no resource %s", s.p.Name, typ)
	}
	news, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		props, err := marshal(news)
		return &pulumirpc.CreateResponse{Properties: props}, err
	}
	id, outputs, err := res.Create(Request{Type: typ, Name: name, News: news, Ctx: ctx, Status: s.status(ctx, req.GetUrn())})
	if err != nil {
		return nil, err
	}
	props, err := marshal(outputs)
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, err
}

func (s *server) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	typ, name := typeOf(req.GetUrn())
	res, _ := s.resource(typ)
	if res.Read == nil {
		return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
	}
	olds, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	inputs, err := unmarshal(req.GetInputs())
	if err != nil {
		return nil, err
	}
	id, outputs, newInputs, err := res.Read(Request{Type: typ, Name: name, ID: req.GetId(), Olds: olds, OldInputs: inputs})
	if err != nil {
		return nil, err
	}
	props, err := marshal(outputs)
	if err != nil {
		return nil, err
	}
	ins, err := marshal(newInputs)
	return &pulumirpc.ReadResponse{Id: id, Properties: props, Inputs: ins}, err
}

func (s *server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	typ, name := typeOf(req.GetUrn())
	olds, err := unmarshal(req.GetOlds())
	if err != nil {
		return nil, err
	}
	oldInputs, err := unmarshal(req.GetOldInputs())
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	outputs := news
	if res, _ := s.resource(typ); res.Plan != nil && req.GetPreview() {
		// The planned state: the old outputs with the new inputs, and what the plan renews unknown.
		outputs = olds.Copy()
		for k, v := range news {
			outputs[k] = v
		}
		for _, k := range res.Plan(olds, news) {
			outputs[resource.PropertyKey(k)] = resource.MakeComputed(resource.NewStringProperty(""))
		}
	} else if res.Update != nil && !req.GetPreview() {
		if outputs, err = res.Update(Request{Type: typ, Name: name, ID: req.GetId(), Olds: olds, OldInputs: oldInputs, News: news,
			Ctx: ctx, Status: s.status(ctx, req.GetUrn())}); err != nil {
			return nil, err
		}
	}
	props, err := marshal(outputs)
	return &pulumirpc.UpdateResponse{Properties: props}, err
}

func (s *server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	typ, name := typeOf(req.GetUrn())
	olds, err := unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	oldInputs, err := unmarshal(req.GetOldInputs())
	if err != nil {
		return nil, err
	}
	if res, _ := s.resource(typ); res.Delete != nil {
		if err := res.Delete(Request{Type: typ, Name: name, ID: req.GetId(), Olds: olds, OldInputs: oldInputs,
			Ctx: ctx, Status: s.status(ctx, req.GetUrn())}); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// status logs ephemeral status lines on a resource; a line the engine does not take is dropped.
func (s *server) status(ctx context.Context, urn string) func(string) {
	return func(msg string) { _ = s.host.LogStatus(ctx, diag.Info, resource.URN(urn), msg) }
}

func (s *server) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	fn, ok := s.p.Functions[req.GetTok()]
	if !ok {
		return nil, fmt.Errorf("lab %s simulator: no function %s", s.p.Name, req.GetTok())
	}
	args, err := unmarshal(req.GetArgs())
	if err != nil {
		return nil, err
	}
	res, err := fn(args)
	if err != nil {
		// A failed function reaches the program as an error, like the real provider's.
		return &pulumirpc.InvokeResponse{Failures: []*pulumirpc.CheckFailure{{Reason: err.Error()}}}, nil
	}
	ret, err := marshal(res)
	return &pulumirpc.InvokeResponse{Return: ret}, err
}

func (s *server) Construct(ctx context.Context, req *pulumirpc.ConstructRequest) (*pulumirpc.ConstructResponse, error) {
	if s.p.Construct == nil {
		return nil, fmt.Errorf("lab %s simulator: no components", s.p.Name)
	}
	return provider.Construct(ctx, req, s.host.EngineConn(), s.p.Construct)
}

func (s *server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// Str returns a string input, unwrapping secrets; "" when absent or unknown.
func Str(m resource.PropertyMap, key string) string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return ""
	}
	return StrValue(v)
}

// StrValue unwraps a secret string value.
func StrValue(v resource.PropertyValue) string {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

// Strings returns a list of strings input, unwrapping secrets.
func Strings(m resource.PropertyMap, key string) []string {
	v := m[resource.PropertyKey(key)]
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsArray() {
		return nil
	}
	var outList []string
	for _, e := range v.ArrayValue() {
		outList = append(outList, StrValue(e))
	}
	return outList
}

// Plain returns m as plain Go values, secrets unwrapped, as a provider hands objects to its API.
func Plain(m resource.PropertyMap) map[string]any {
	return m.MapRepl(nil, func(v resource.PropertyValue) (any, bool) {
		if v.IsSecret() {
			return plainValue(v.SecretValue().Element), true
		}
		return nil, false
	})
}

func plainValue(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return plainValue(v.SecretValue().Element)
	case v.IsObject():
		return Plain(v.ObjectValue())
	case v.IsArray():
		out := make([]any, len(v.ArrayValue()))
		for i, e := range v.ArrayValue() {
			out[i] = plainValue(e)
		}
		return out
	}
	return v.Mappable()
}
