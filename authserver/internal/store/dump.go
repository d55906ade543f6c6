package store

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Backup is implemented by every backend: the whole state as JSON lines, so a deployment can be backed up and
// restored, also from one backend into the other.
//
// Dump writes a header line and then one record per line. Restore reads such a file into the store: records are
// put whether or not the store holds them already (restore into an empty store for an exact copy); expired records
// are skipped. Signing keys are merged (dumped keys first, then the store's own keys the dump lacks), so tokens
// signed by either stay valid. Feed entries keep their Seq when the store's feed counter is 0 (a fresh store: feed
// readers continue where they were); otherwise they are numbered after the store's counter, so no reader misses one.
// Secrets stay hashed in a dump, and connected accounts' tokens sealed, but it holds the private signing keys: keep
// it like a secret.
type Backup interface {
	Dump(ctx context.Context, w io.Writer) error
	Restore(ctx context.Context, r io.Reader) error
}

// DumpFormat and DumpVersion identify a dump in its header line; Restore refuses other formats and newer versions.
const (
	DumpFormat  = "mcp-oauth-gateway-store"
	DumpVersion = 1
)

// Kinds of dump records.
const (
	DumpHeader      = "header"
	DumpClient      = "client"
	DumpAuthRequest = "auth_request"
	DumpCode        = "code"
	DumpRefresh     = "refresh"
	DumpAccess      = "access"
	DumpRevocation  = "revocation"
	DumpConsent     = "consent"
	DumpSigningKeys = "signing_keys"
	DumpFeedSeq     = "feed_seq"       // the feed's sequence counter
	DumpRevokedFam  = "revoked_family" // a recently revoked grant family (see RevokeFamily)
	DumpDevice      = "device_grant"   // a device authorization in flight (RFC 8628)
	DumpLoginPin    = "login_pin"      // a GitHub login pinned to its account (see PinLogin)
	DumpConnection  = "connection"     // a connected account, its tokens sealed as stored
)

// DumpRecord is one line of a dump: Kind says which field is set.
type DumpRecord struct {
	Kind string `json:"kind"`

	// header
	Format    string    `json:"format,omitempty"`
	Version   int       `json:"version,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`

	Client      *Client       `json:"client,omitempty"`
	AuthRequest *AuthRequest  `json:"auth_request,omitempty"`
	Code        *AuthCode     `json:"code,omitempty"`
	Refresh     *RefreshToken `json:"refresh,omitempty"`
	Used        bool          `json:"used,omitempty"` // code redeemed / refresh token rotated
	Access      *AccessToken  `json:"access,omitempty"`
	Revocation  *Revocation   `json:"revocation,omitempty"`
	Consent     *Consent      `json:"consent,omitempty"`
	Device      *DeviceGrant  `json:"device_grant,omitempty"`
	LoginPin    *LoginPin     `json:"login_pin,omitempty"`
	Connection  *Connection   `json:"connection,omitempty"`
	SigningKeys []SigningKey  `json:"signing_keys,omitempty"`
	Seq         int64         `json:"seq,omitempty"`
	FamilyID    string        `json:"family_id,omitempty"`
	ExpiresAt   time.Time     `json:"expires_at,omitzero"` // of a revoked_family mark
}

// DumpWriter writes a dump: the header first, then records.
type DumpWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

// NewDumpWriter writes the header line.
func NewDumpWriter(w io.Writer) (*DumpWriter, error) {
	bw := bufio.NewWriter(w)
	d := &DumpWriter{bw: bw, enc: json.NewEncoder(bw)}
	if err := d.Write(DumpRecord{Kind: DumpHeader, Format: DumpFormat, Version: DumpVersion, CreatedAt: time.Now().UTC()}); err != nil {
		return nil, err
	}
	return d, nil
}

// Write writes one record as one line.
func (d *DumpWriter) Write(r DumpRecord) error {
	if err := d.enc.Encode(r); err != nil {
		return fmt.Errorf("write dump: %w", err)
	}
	return nil
}

// Close flushes; it does not close the underlying writer.
func (d *DumpWriter) Close() error {
	if err := d.bw.Flush(); err != nil {
		return fmt.Errorf("write dump: %w", err)
	}
	return nil
}

// ReadDump checks the header and hands every record to fn, in file order. Errors name the line.
func ReadDump(r io.Reader, fn func(DumpRecord) error) error {
	br := bufio.NewReader(r)
	n := 0
	sawHeader := false
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && !(len(b) == 1 && b[0] == '\n') {
			n++
			var rec DumpRecord
			if jerr := json.Unmarshal(b, &rec); jerr != nil {
				return fmt.Errorf("dump line %d: %w", n, jerr)
			}
			if !sawHeader {
				if rec.Kind != DumpHeader || rec.Format != DumpFormat {
					return fmt.Errorf("dump line 1: not a %s dump (missing header)", DumpFormat)
				}
				if rec.Version < 1 || rec.Version > DumpVersion {
					return fmt.Errorf("dump line 1: version %d, this build reads up to version %d", rec.Version, DumpVersion)
				}
				sawHeader = true
			} else if ferr := fn(rec); ferr != nil {
				return fmt.Errorf("dump line %d (%s): %w", n, rec.Kind, ferr)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read dump: %w", err)
		}
	}
	if !sawHeader {
		return fmt.Errorf("empty dump: no %s header", DumpFormat)
	}
	return nil
}

// DumpContents is a dump read for Restore: the state records (clients, tokens, grants, ...) in file order, and apart
// from them the feed, its counter and the signing keys, which a backend restores after the records.
type DumpContents struct {
	Records     []DumpRecord // every record but revocation, feed_seq and signing_keys
	Feed        []Revocation // sorted by Seq
	Seq         int64        // the highest feed counter in the dump
	SigningKeys []SigningKey // none: the store's keys stay as they are
}

// ReadForRestore reads a whole dump, checking every record (CheckDumpRecord), before Restore changes anything.
func ReadForRestore(r io.Reader) (*DumpContents, error) {
	var d DumpContents
	err := ReadDump(r, func(rec DumpRecord) error {
		if err := CheckDumpRecord(rec); err != nil {
			return err
		}
		switch rec.Kind {
		case DumpRevocation:
			d.Feed = append(d.Feed, *rec.Revocation)
		case DumpFeedSeq:
			d.Seq = max(d.Seq, rec.Seq)
		case DumpSigningKeys:
			d.SigningKeys = append(d.SigningKeys, rec.SigningKeys...)
		default:
			d.Records = append(d.Records, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	slices.SortFunc(d.Feed, func(a, b Revocation) int { return cmp.Compare(a.Seq, b.Seq) })
	return &d, nil
}

// MergeSigningKeys returns the dumped keys followed by the current keys the dump lacks (by KID).
func MergeSigningKeys(dumped, current []SigningKey) []SigningKey {
	out := append([]SigningKey(nil), dumped...)
	seen := map[string]bool{}
	for _, k := range dumped {
		seen[k.KID] = true
	}
	for _, k := range current {
		if !seen[k.KID] {
			out = append(out, k)
		}
	}
	return out
}

// ErrBadDumpRecord is returned for a record whose kind is unknown or whose payload is missing.
var ErrBadDumpRecord = errors.New("bad dump record")

// CheckDumpRecord reports a record that Restore cannot use.
func CheckDumpRecord(r DumpRecord) error {
	ok := false
	switch r.Kind {
	case DumpClient:
		ok = r.Client != nil
	case DumpAuthRequest:
		ok = r.AuthRequest != nil
	case DumpCode:
		ok = r.Code != nil
	case DumpRefresh:
		ok = r.Refresh != nil
	case DumpAccess:
		ok = r.Access != nil
	case DumpRevocation:
		ok = r.Revocation != nil
	case DumpConsent:
		ok = r.Consent != nil
	case DumpSigningKeys, DumpFeedSeq:
		ok = true
	case DumpRevokedFam:
		ok = r.FamilyID != ""
	case DumpDevice:
		ok = r.Device != nil
	case DumpLoginPin:
		ok = r.LoginPin != nil && r.LoginPin.Login != "" && r.LoginPin.UserID != ""
	case DumpConnection:
		ok = r.Connection != nil && r.Connection.UserID != "" && r.Connection.Upstream != ""
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrBadDumpRecord, r.Kind)
	}
	if !ok {
		return fmt.Errorf("%w: %s without its payload", ErrBadDumpRecord, r.Kind)
	}
	return nil
}
