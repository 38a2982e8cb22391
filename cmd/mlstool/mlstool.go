package mlstool

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/mls"
)

// mlsSummary is what `mimids mls -h` says above the verbs.
const mlsSummary = `Inspects MLS (RFC 9420) messages offline. Input is a hex argument, a file
(-f, hex or raw binary) or stdin ("-" or no argument; hex or raw binary). JSON
field names are RFC 9420's, byte strings are lowercase hex. A failure prints
the error to stderr and exits 1.`

var mlsVerbs = []usage.Verb{
	{Name: "decode", Summary: "decode an MLSMessage (or, with -type, a bare RFC 9420 struct) to JSON"},
	{Name: "keypackage", Summary: "validate a KeyPackage and print its ref, identity, suite, lifetime and verdict"},
	{Name: "replay", Summary: "follow a group from a GroupInfo through PublicMessage commits"},
}

var (
	decodeHelp = usage.Help{Name: "mls decode", Args: "[HEX | -f FILE | -]",
		Summary: "Decodes an MLSMessage (or, with -type, a bare RFC 9420 structure) and prints it as JSON.",
		Example: "mls decode -type key_package -f keypackage.hex"}
	keyPackageHelp = usage.Help{Name: "mls keypackage", Args: "[HEX | -f FILE | -]",
		Summary: "Validates a KeyPackage (bare or in an MLSMessage) and prints its ref, identity, cipher suite, lifetime and verdict as JSON; exit 1 if invalid.",
		Example: "mls keypackage -now 2026-01-01T00:00:00Z -f keypackage.hex"}
)

// mlsMaxInput bounds what the tool reads from a file or stdin.
const mlsMaxInput = 64 << 20

// mlsCommand implements `mimids mls`.
func mlsCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if code, ok := usage.Group("mls", mlsSummary, mlsVerbs, args, stdout, stderr); !ok {
		return code
	}
	switch args[0] {
	case "decode":
		return mlsDecodeCommand(args[1:], stdin, stdout, stderr)
	case "keypackage":
		return mlsKeyPackageCommand(args[1:], stdin, stdout, stderr)
	case "replay":
		return mlsReplay(args[1:], stdin, stdout, stderr)
	}
	return 2 // unreachable: usage.Group knows the verbs
}

// mlsDecodeTypes are the structures `mimids mls decode -type` accepts.
var mlsDecodeTypes = map[string]func(b []byte) (any, error){
	"message":               func(b []byte) (any, error) { return mls.DecodeMLSMessage(b) },
	"key_package":           func(b []byte) (any, error) { return mls.DecodeKeyPackage(b) },
	"group_info":            func(b []byte) (any, error) { return mls.DecodeGroupInfo(b) },
	"welcome":               func(b []byte) (any, error) { return mls.DecodeWelcome(b) },
	"ratchet_tree":          func(b []byte) (any, error) { return mls.DecodeRatchetTree(b) },
	"commit":                func(b []byte) (any, error) { return mls.DecodeCommit(b) },
	"proposal":              func(b []byte) (any, error) { return mls.DecodeProposal(b) },
	"leaf_node":             func(b []byte) (any, error) { return mls.DecodeLeafNode(b) },
	"group_context":         mlsDecodeInto[mls.GroupContext],
	"group_secrets":         mlsDecodeInto[mls.GroupSecrets],
	"update_path":           mlsDecodeInto[mls.UpdatePath],
	"authenticated_content": mlsDecodeInto[mls.AuthenticatedContent],
}

func mlsDecodeInto[T any, PT interface {
	*T
	Unmarshal([]byte) error
}](b []byte) (any, error) {
	v := PT(new(T))
	if err := v.Unmarshal(b); err != nil {
		return nil, err
	}
	return v, nil
}

func mlsDecodeCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mls decode", flag.ContinueOnError)
	file := fs.String("f", "", "read the input from `FILE` (hex or raw binary)")
	typ := fs.String("type", "message", "structure to decode: "+mlsTypeNames())
	data, code, ok := mlsParseInput(fs, decodeHelp, args, file, stdin, stdout, stderr)
	if !ok {
		return code
	}
	dec, ok := mlsDecodeTypes[*typ]
	if !ok {
		fmt.Fprintf(stderr, "mimids mls decode: unknown -type %q (one of %s)\n", *typ, mlsTypeNames())
		return 2
	}
	v, err := dec(data)
	if err != nil {
		fmt.Fprintf(stderr, "mimids mls decode: %v\n", err)
		return 1
	}
	out, err := mls.RenderJSON(v)
	if err != nil {
		fmt.Fprintf(stderr, "mimids mls decode: %v\n", err)
		return 1
	}
	return mlsWriteJSON(stdout, stderr, out)
}

func mlsTypeNames() string {
	return "message, key_package, group_info, welcome, ratchet_tree, commit, proposal, leaf_node, " +
		"group_context, group_secrets, update_path, authenticated_content"
}

// mlsKeyPackageReport is the output of `mimids mls keypackage`.
type mlsKeyPackageReport struct {
	Verdict        string          `json:"verdict"`
	Error          string          `json:"error,omitempty"`
	Ref            string          `json:"ref,omitempty"`
	CipherSuite    string          `json:"cipher_suite"`
	CredentialType string          `json:"credential_type"`
	Identity       *string         `json:"identity,omitempty"`
	IdentityText   *string         `json:"identity_text,omitempty"`
	Lifetime       mlsLifetime     `json:"lifetime"`
	KeyPackage     json.RawMessage `json:"key_package"`
}

type mlsLifetime struct {
	NotBefore     uint64 `json:"not_before"`
	NotAfter      uint64 `json:"not_after"`
	NotBeforeTime string `json:"not_before_time"`
	NotAfterTime  string `json:"not_after_time"`
}

func mlsKeyPackageCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mls keypackage", flag.ContinueOnError)
	file := fs.String("f", "", "read the KeyPackage from `FILE` (hex or raw binary)")
	nowFlag := fs.String("now", "", "validate at this `time` (RFC 3339 or Unix seconds) instead of now")
	data, code, ok := mlsParseInput(fs, keyPackageHelp, args, file, stdin, stdout, stderr)
	if !ok {
		return code
	}
	now := time.Now()
	if *nowFlag != "" {
		t, err := mlsParseTime(*nowFlag)
		if err != nil {
			fmt.Fprintf(stderr, "mimids mls keypackage: -now: %v\n", err)
			return 2
		}
		now = t
	}
	kp, err := mls.DecodeKeyPackageMessage(data)
	if err != nil {
		fmt.Fprintf(stderr, "mimids mls keypackage: %v\n", err)
		return 1
	}
	rep, verr := mlsReportKeyPackage(kp, now)
	if rep == nil {
		fmt.Fprintf(stderr, "mimids mls keypackage: %v\n", verr)
		return 1
	}
	out, err := json.Marshal(rep)
	if err != nil {
		fmt.Fprintf(stderr, "mimids mls keypackage: %v\n", err)
		return 1
	}
	if code := mlsWriteJSON(stdout, stderr, out); code != 0 {
		return code
	}
	if verr != nil {
		fmt.Fprintf(stderr, "mimids mls keypackage: %v\n", verr)
		return 1
	}
	return 0
}

// mlsReportKeyPackage validates kp and describes it, valid or not. The
// error is the validation failure.
func mlsReportKeyPackage(kp *mls.KeyPackage, now time.Time) (*mlsKeyPackageReport, error) {
	body, err := mls.RenderJSON(kp)
	if err != nil {
		return nil, err
	}
	ln := &kp.LeafNode
	rep := &mlsKeyPackageReport{
		Verdict:        "valid",
		CipherSuite:    kp.CipherSuite.String(),
		CredentialType: ln.Credential.CredentialType.String(),
		KeyPackage:     body,
	}
	if ln.LeafNodeSource == mls.LeafNodeSourceKeyPackage {
		rep.Lifetime = mlsLifetime{
			NotBefore: ln.Lifetime.NotBefore, NotAfter: ln.Lifetime.NotAfter,
			NotBeforeTime: mlsUnixString(ln.Lifetime.NotBefore), NotAfterTime: mlsUnixString(ln.Lifetime.NotAfter),
		}
	}
	if ln.Credential.CredentialType == mls.CredentialTypeBasic {
		id := hex.EncodeToString(ln.Credential.Identity)
		rep.Identity = &id
		if s := string(ln.Credential.Identity); utf8.ValidString(s) && strings.IndexFunc(s, mlsNotPrintable) < 0 {
			rep.IdentityText = &s
		}
	}
	if ref, err := kp.Ref(); err == nil {
		rep.Ref = hex.EncodeToString(ref)
	}
	_, verr := mls.ValidateKeyPackage(kp, now)
	if verr != nil {
		rep.Verdict = "invalid"
		rep.Error = verr.Error()
	}
	return rep, verr
}

func mlsNotPrintable(r rune) bool { return !unicode.IsPrint(r) }

func mlsUnixString(s uint64) string {
	if s > 1<<62 {
		s = 1 << 62
	}
	return time.Unix(int64(s), 0).UTC().Format(time.RFC3339)
}

func mlsParseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Parse(time.RFC3339, s)
}

// mlsParseInput parses fs and returns the input bytes: the hex argument,
// the -f file or stdin. When there is nothing to do (the help was printed,
// or the input is wrong) ok is false and code is the exit code.
func mlsParseInput(fs *flag.FlagSet, h usage.Help, args []string, file *string, stdin io.Reader, stdout, stderr io.Writer) (data []byte, code int, ok bool) {
	if err := usage.Parse(fs, h, args, stdout, stderr); err != nil {
		return nil, usage.Code(err), false
	}
	name := "mimids " + fs.Name()
	rest := fs.Args()
	if len(rest) > 1 || (len(rest) == 1 && *file != "") {
		fmt.Fprintf(stderr, "%s: give one input: a hex argument, -f FILE or - for stdin\n", name)
		return nil, 2, false
	}
	var raw []byte
	var err error
	switch {
	case *file != "":
		raw, err = mlsReadAll(os.Open(*file))
	case len(rest) == 0 || rest[0] == "-":
		raw, err = io.ReadAll(io.LimitReader(stdin, mlsMaxInput+1))
	default:
		b, herr := mlsHex([]byte(rest[0]))
		if herr != nil {
			fmt.Fprintf(stderr, "%s: argument is not hex: %v\n", name, herr)
			return nil, 2, false
		}
		return b, 0, true
	}
	if err == nil && len(raw) > mlsMaxInput {
		err = fmt.Errorf("input larger than %d bytes", mlsMaxInput)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return nil, 1, false
	}
	if b, err := mlsHex(raw); err == nil {
		return b, 0, true
	}
	return raw, 0, true
}

func mlsReadAll(f *os.File, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, mlsMaxInput+1))
}

// mlsHex decodes hex text, ignoring white space and an optional 0x prefix.
func mlsHex(b []byte) ([]byte, error) {
	s := strings.Join(strings.Fields(string(b)), "")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if s == "" {
		return nil, errors.New("empty input")
	}
	return hex.DecodeString(s)
}

func mlsWriteJSON(stdout, stderr io.Writer, compact []byte) int {
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "  "); err != nil {
		fmt.Fprintf(stderr, "mimids mls: %v\n", err)
		return 1
	}
	b.WriteByte('\n')
	if _, err := stdout.Write(b.Bytes()); err != nil {
		fmt.Fprintf(stderr, "mimids mls: %v\n", err)
		return 1
	}
	return 0
}
