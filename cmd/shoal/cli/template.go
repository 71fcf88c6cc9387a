package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"unicode"
)

// outputTemplate is a parsed --format Go template, as docker takes them:
// "table " before it asks for a header row and aligned columns, and the
// two-character escapes \t and \n are a tab and a newline, so a shell's
// single quotes can carry them.
type outputTemplate struct {
	tmpl  *template.Template
	table bool
}

func parseTemplate(format string) (*outputTemplate, error) {
	t := &outputTemplate{}
	if rest, ok := strings.CutPrefix(format, "table"); ok {
		t.table, format = true, rest
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.Trim(format, " "))
	tmpl, err := template.New("").Option("missingkey=error").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %v", err)
	}
	t.tmpl = tmpl
	return t, nil
}

// execute runs the template on dot, appending a newline.
func (t *outputTemplate) execute(buf *bytes.Buffer, dot any) error {
	if err := t.tmpl.Execute(buf, dot); err != nil {
		return err
	}
	buf.WriteByte('\n')
	return nil
}

// templateFuncs are the functions docker's templates have.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(buf.String()), nil
	},
	"join":  joinAny,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"title": func(s string) string {
		prev := ' '
		return strings.Map(func(r rune) rune {
			up := unicode.IsSpace(prev)
			prev = r
			if up {
				return unicode.ToUpper(r)
			}
			return r
		}, s)
	},
	"pad": func(s string, before, after int) string {
		if s == "" {
			return s
		}
		return strings.Repeat(" ", before) + s + strings.Repeat(" ", after)
	},
	"truncate": func(s string, n int) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n])
		}
		return s
	},
}

// joinAny is strings.Join for the lists a template sees: []string in a
// row, []any in an inspected object.
func joinAny(list any, sep string) (string, error) {
	switch l := list.(type) {
	case []string:
		return strings.Join(l, sep), nil
	case []any:
		parts := make([]string, len(l))
		for i, v := range l {
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, sep), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("join: %T is not a list", list)
}
