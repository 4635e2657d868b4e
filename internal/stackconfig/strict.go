package stackconfig

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// decodeStrict decodes JSON text into v (a pointer to a struct) and records every unknown key and
// every type mismatch as a problem, instead of stopping at the first one as encoding/json does.
func decodeStrict(key, text string, v any, p *Problems) {
	var raw any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		p.add(key, "is not a valid YAML object (%v)", err)
		return
	}
	decodeValue(key, raw, reflect.ValueOf(v).Elem(), p)
}

func decodeValue(path string, raw any, v reflect.Value, p *Problems) {
	if raw == nil {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			p.add(path, "must be an object, not %s", describe(raw))
			return
		}
		fields := structFields(v.Type())
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			idx, known := fields[k]
			if !known {
				names := make([]string, 0, len(fields))
				for f := range fields {
					names = append(names, f)
				}
				p.add(path+"."+k, "unknown key%s", Suggest(k, names))
				if best := closest(k, names); best != "" {
					p.typo(path + "." + best)
				}
				continue
			}
			decodeValue(path+"."+k, obj[k], v.Field(idx), p)
		}
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			p.add(path, "must be a list, not %s", describe(raw))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(arr), len(arr))
		for i, item := range arr {
			decodeValue(fmt.Sprintf("%s[%d]", path, i), item, out.Index(i), p)
		}
		v.Set(out)
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		before := len(*p)
		decodeValue(path, raw, elem.Elem(), p)
		if len(*p) == before {
			v.Set(elem) // a value that did not decode stays unset: its own problem is enough
		}
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			p.add(path, "must be a string, not %s (quote it)", describe(raw))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			p.add(path, "must be true or false, not %s", describe(raw))
			return
		}
		v.SetBool(b)
	case reflect.Int:
		f, ok := raw.(float64)
		if !ok || f != float64(int(f)) {
			p.add(path, "must be a whole number, not %s", describe(raw))
			return
		}
		v.SetInt(int64(f))
	default:
		panic(fmt.Sprintf("stackconfig: unsupported field kind %s at %s", v.Kind(), path))
	}
}

// structFields maps each JSON key of t to its field index.
func structFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

func describe(raw any) string {
	switch x := raw.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case float64:
		return fmt.Sprintf("the number %v", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%v", raw)
}

// closest is the known key nearest to an unknown one, for typos such as instalDisk; "" when none is
// near.
func closest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(key), strings.ToLower(k)); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	return best
}

// Suggest is the tail of an unknown key's message: "; did you mean <key>?", or the known keys.
func Suggest(key string, known []string) string {
	if best := closest(key, known); best != "" {
		return fmt.Sprintf("; did you mean %s?", best)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return fmt.Sprintf("; known keys: %s", strings.Join(sorted, ", "))
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
