package cli

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

type fakeRow struct {
	id, name, state string
	self            bool
	tags            []string
}

var fakeColumns = []column[fakeRow]{
	{"ID", "ID", func(r fakeRow) any { return r.id }},
	{"Self", "", func(r fakeRow) any { return r.self }},
	{"Name", "NAME", func(r fakeRow) any { return r.name }},
	{"CurrentState", "CURRENT STATE", func(r fakeRow) any { return r.state }},
	{"Tags", "TAGS", func(r fakeRow) any { return r.tags }},
}

const fakeDefault = "table {{.ID}}\t{{.Name}}\t{{.CurrentState}}"

var fakeRows = []fakeRow{
	{"a1", "web", "Running", true, []string{"x", "y"}},
	{"b22222222222", "db", "Pending", false, nil},
}

func TestPrintRows(t *testing.T) {
	for _, tc := range []struct {
		format string
		rows   []fakeRow
		want   string
	}{
		{"", fakeRows, "" +
			"ID             NAME      CURRENT STATE\n" +
			"a1             web       Running\n" +
			"b22222222222   db        Pending\n"},
		{"table", fakeRows, "" +
			"ID             NAME      CURRENT STATE\n" +
			"a1             web       Running\n" +
			"b22222222222   db        Pending\n"},
		{"table", nil, "ID        NAME      CURRENT STATE\n"},
		{"{{.Name}} {{.CurrentState}}", fakeRows, "web Running\ndb Pending\n"},
		{"{{.Name}}", nil, ""},
		// A shell's single quotes carry \t as two characters.
		{`table {{.CurrentState}}\t{{.Name}}`, fakeRows, "" +
			"CURRENT STATE   NAME\n" +
			"Running         web\n" +
			"Pending         db\n"},
		{`{{.ID}}\t{{.Name}}`, fakeRows[:1], "a1\tweb\n"},
		{"table {{.ID}} {{if .Self}}*{{else}} {{end}}\t{{.Name}}", fakeRows, "" +
			"ID               NAME\n" +
			"a1 *             web\n" +
			"b22222222222     db\n"},
		{"{{json .}}", fakeRows[:1], `{"CurrentState":"Running","ID":"a1","Name":"web","Self":true,"Tags":["x","y"]}` + "\n"},
		{"{{json .Name}} {{json .Tags}}", fakeRows, "\"web\" [\"x\",\"y\"]\n\"db\" null\n"},
		{`{{.Name | upper}} {{lower "AB"}} {{title "two words"}} {{truncate .ID 3}} [{{pad .Name 1 2}}] {{join .Tags ","}} {{split "a:b" ":"}}`, fakeRows[:1],
			"WEB ab Two Words a1 [ web  ] x,y [a b]\n"},
		{"{{printf \"%-4s|\" .Name}}", fakeRows, "web |\ndb  |\n"},
	} {
		var out bytes.Buffer
		if err := printRows(&out, tc.format, fakeDefault, fakeColumns, tc.rows); err != nil {
			t.Errorf("printRows(%q) = %v", tc.format, err)
			continue
		}
		if out.String() != tc.want {
			t.Errorf("printRows(%q) printed\n%q\nwant\n%q", tc.format, out.String(), tc.want)
		}
	}
}

func TestPrintRowsErrors(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"{{.Name", []string{"template parsing error: template: :1: unclosed action"}},
		{"{{.Name}", []string{"template parsing error:"}},
		{"{{nosuchfunc .Name}}", []string{"template parsing error:", `function "nosuchfunc" not defined`}},
		{"{{.Nmae}}", []string{`map has no entry for key "Nmae"`, "the fields are ID, Self, Name, CurrentState, Tags"}},
		{"table {{.Nmae}}", []string{`map has no entry for key "Nmae"`}},
		{"{{join .Name \",\"}}", []string{"join: string is not a list"}},
	} {
		var out bytes.Buffer
		err := printRows(&out, tc.format, fakeDefault, fakeColumns, fakeRows)
		if err == nil {
			t.Errorf("printRows(%q) = nil, printed %q; want an error", tc.format, out.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("printRows(%q) = %q; want it to contain %q", tc.format, err, w)
			}
		}
		if out.Len() != 0 {
			t.Errorf("printRows(%q) failed but printed %q; want nothing", tc.format, out.String())
		}
	}
}

func TestListFlagsCheck(t *testing.T) {
	for _, tc := range []struct {
		format, err string
	}{
		{"", ""}, {"table", ""}, {"json", ""}, {"{{.ID}}", ""}, {"table {{.ID}}", ""},
		{"yaml", `--format "yaml": use table, json or a Go template`},
		{"{{.ID", "template parsing error: template: :1: unclosed action"},
		{"table {{if}}", "template parsing error:"},
	} {
		err := (&listFlags{format: tc.format}).check()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("check(%q) = %v; want %q", tc.format, err, tc.err)
		}
	}
}

// Template mistakes are reported before any connection, exit status 1,
// with docker's "template parsing error" wording.
func TestBadTemplateNoDaemon(t *testing.T) {
	for _, args := range [][]string{
		{"service", "ls", "--format", "{{.Name"},
		{"service", "ps", "--format", "{{.Name", "web"},
		{"service", "inspect", "--format", "{{.spec.name", "web"},
		{"node", "ls", "--format", "{{.ID"},
		{"node", "inspect", "-f", "{{.id", "self"},
		{"network", "ls", "--format", "table {{.ID"},
		{"network", "inspect", "--format", "{{.id", "app"},
		{"image", "ls", "--format", "{{.Repository"},
		{"ps", "--format", "{{.Names"},
	} {
		stdout, stderr, err := run(t, append([]string{"-H", "unix://" + noDaemon}, args...)...)
		if err == nil || !strings.HasPrefix(Message(err), "Error: template parsing error: template: :1: unclosed action") || ExitCode(err) != 1 {
			t.Errorf("Run(%q) = %v (exit %d); want Error: template parsing error: ..., exit 1", args, err, ExitCode(err))
			continue
		}
		if stdout != "" || stderr != "" {
			t.Errorf("Run(%q) printed %q, %q; want nothing", args, stdout, stderr)
		}
	}
	for _, f := range []string{"table", "table {{.id}}", "yaml"} {
		_, _, err := run(t, "-H", "unix://"+noDaemon, "service", "inspect", "--format", f, "web")
		if err == nil || !strings.Contains(err.Error(), "use json or a Go template") {
			t.Errorf("service inspect --format %q = %v; want use json or a Go template", f, err)
		}
	}
}

// An inspect template sees the object as its JSON shows it, with
// docker's field names; map keys (labels) stay the user's.
func TestInspectTemplateDot(t *testing.T) {
	svc := &shoalv1.Service{Id: "s1", Meta: &shoalv1.Meta{Version: 9007199254740993},
		Spec: &shoalv1.ServiceSpec{Name: "123", Labels: map[string]string{"team": "blue", "node_id": "x"},
			Mode:     &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 3}},
			Task:     &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx", Args: []string{"a", "b"}}},
			Networks: []*shoalv1.NetworkAttachment{{Target: "n1"}, {Target: "n2"}}}}
	task := &shoalv1.Task{Id: "t1", NodeId: "node9", ServiceId: "s1", DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING}
	for _, tc := range []struct {
		obj          proto.Message
		format, want string
	}{
		{svc, "{{.ID}} {{.Spec.Name}}", "s1 123"},
		{svc, "{{.Meta.Version}}", "9007199254740993"}, // beyond float64: printed whole
		{svc, "{{.Spec.Replicated.Replicas}} {{.Spec.Labels.team}} {{.Spec.Labels.node_id}}", "3 blue x"},
		{svc, "[{{.Spec.Task.Container.User}}]", "[]"}, // unset: its zero value
		{svc, "{{join .Spec.Task.Container.Args \" \"}}", "a b"},
		{svc, "{{range .Spec.Networks}}{{.Target}} {{end}}", "n1 n2 "},
		{svc, "{{json .Spec.Labels}} {{json .Meta.Version}} {{json .Spec.Name}}", `{"node_id":"x","team":"blue"} 9007199254740993 "123"`},
		{svc, "{{if eq .Spec.Name \"123\"}}yes{{end}}", "yes"},
		{task, "{{.NodeID}} {{.ServiceID}} {{.DesiredState}}", "node9 s1 TASK_STATE_RUNNING"},
	} {
		tmpl, err := parseTemplate(tc.format)
		if err != nil {
			t.Fatal(err)
		}
		dot, err := templateValue(tc.obj)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := tmpl.execute(&buf, dot); err != nil || buf.String() != tc.want+"\n" {
			t.Errorf("%s = %q, %v; want %q", tc.format, buf.String(), err, tc.want)
		}
	}
	tmpl, _ := parseTemplate("{{.Spec.Nmae}}")
	dot, _ := templateValue(svc)
	if err := tmpl.execute(&bytes.Buffer{}, dot); err == nil || !strings.Contains(err.Error(), `map has no entry for key "Nmae"`) {
		t.Errorf("{{.Spec.Nmae}} = %v; want no entry for key Nmae", err)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"id": "ID", "node_id": "NodeID", "desired_state": "DesiredState", "virtual_ips": "VirtualIPs",
		"nano_cpus": "NanoCPUs", "spec": "Spec", "memory_bytes": "MemoryBytes", "ca_cert_pem": "CACertPEM",
	} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q; want %q", in, got, want)
		}
	}
}
