package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultKeep is the number of previous generations a Store keeps when
// Options.Keep is zero.
const DefaultKeep = 5

// DefaultMode is the permission of qubes.xml when Options.Mode is zero, as
// the reference writes it.
const DefaultMode os.FileMode = 0o660

// ErrClosed is returned by the methods of a closed Store or Committer.
var ErrClosed = errors.New("store: closed")

// Options configures a Store.
type Options struct {
	// Keep is the number of previous generations kept beside the file as
	// <path>.1 (the newest) … <path>.<Keep>. Zero means DefaultKeep; a
	// negative value keeps none.
	Keep int
	// Logger receives what the store does; nil means no logging.
	Logger hclog.Logger
	// Group, if set and if such a group exists, is given group ownership of
	// the saved file (the reference uses "qubes").
	Group string
	// Mode is the permission of the saved file; zero means DefaultMode.
	Mode os.FileMode
}

// LockedError is returned by Open when another process (or another Store in
// this process) holds the store's lock.
type LockedError struct {
	Path     string // the store
	LockPath string // the lock file
	PID      int    // the holder's process id, 0 if unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another qubesd (pid %d) is using the store at %s (it holds the lock %s); stop it first", e.PID, e.Path, e.LockPath)
	}
	return fmt.Sprintf("another qubesd is using the store at %s (it holds the lock %s); stop it first", e.Path, e.LockPath)
}

// LoadReport says where a loaded Document came from.
type LoadReport struct {
	// Path is the file the Document was read from: the store itself, or a
	// generation (<path>.N) when FellBack.
	Path string
	// FellBack is true when the store did not decode and a generation was
	// used; the recovered Document has then been written back to the store.
	FellBack bool
	// Broken is where the undecodable store was preserved
	// (<path>.broken-<UTC time>), empty if it could not be.
	Broken string
	// Errors lists every problem met on the way: the decode error of each
	// file that did not load, and any failure to preserve the broken file or
	// to write the recovered Document back.
	Errors []error
}

// LoadError is returned by Load when the store exists but neither it nor
// any of its generations could be loaded. The files are left as they are.
//
// LoadError deliberately does not unwrap to the errors of the files: some
// generations may be missing, and errors.Is(err, fs.ErrNotExist) must not
// report a broken store as a missing one (the caller would create a new,
// empty store).
type LoadError struct {
	Path  string  // the store
	Tried []error // one error per file tried, in order, each naming its file
}

func (e *LoadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot load %s: neither it nor any previous generation is usable:", e.Path)
	for _, err := range e.Tried {
		b.WriteString("\n\t")
		b.WriteString(err.Error())
	}
	b.WriteString("\nthe files are left untouched; restore qubes.xml from a backup (or repair one of them) and start again")
	return b.String()
}

// Store is one qubes.xml on disk, locked against other daemons for as long
// as it is open. Its methods are safe for concurrent use; saves are
// serialized.
type Store struct {
	path string
	dir  string
	base string
	keep int
	mode os.FileMode
	gid  int // group to give the file, -1 for none
	log  hclog.Logger

	mu          sync.Mutex // serializes Load, Save and Close
	lock        *os.File   // the locked <path>.lock, nil once closed
	chownWarned bool
	// onDisk is the store file's content as last loaded or saved. A Save of
	// the same content writes nothing: no fsync, and no generation pushed
	// out by a copy of itself.
	onDisk []byte
}

// Open opens the store at path: it takes an exclusive lock on <path>.lock
// (created if missing, and holding the owner's PID) without waiting, and
// returns a *LockedError if someone else holds it. The lock is released by
// Close, or by the kernel when the process ends. Open also removes the
// temporary files an interrupted save may have left. It does not read the
// store; call Load.
func Open(path string, opts Options) (*Store, error) {
	s := &Store{
		path: path,
		dir:  filepath.Dir(path),
		base: filepath.Base(path),
		keep: opts.Keep,
		mode: opts.Mode,
		gid:  -1,
		log:  opts.Logger,
	}
	if s.keep == 0 {
		s.keep = DefaultKeep
	}
	if s.mode == 0 {
		s.mode = DefaultMode
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if opts.Group != "" {
		g, err := user.LookupGroup(opts.Group)
		if err != nil {
			s.log.Debug("group not found; qubes.xml keeps the daemon's group", "group", opts.Group, "error", err)
		} else if gid, err := strconv.Atoi(g.Gid); err == nil {
			s.gid = gid
		}
	}

	lockPath := path + ".lock"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open store %s: create lock file: %w", path, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			lerr := &LockedError{Path: path, LockPath: lockPath}
			if data, err := os.ReadFile(lockPath); err == nil {
				lerr.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
			}
			return nil, lerr
		}
		return nil, fmt.Errorf("open store %s: lock %s: %w", path, lockPath, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			s.log.Warn("cannot write the PID into the lock file", "path", lockPath, "error", err)
		}
	}
	s.lock = f
	s.removeStaleTemps()
	return s, nil
}

// flock applies an flock(2) operation to f, retrying on EINTR.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// removeStaleTemps removes <base>~* files left by saves that were
// interrupted (the process was killed); holding the lock, nobody else can be
// writing them.
func (s *Store) removeStaleTemps() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Warn("cannot list the store directory for stale temporary files", "dir", s.dir, "error", err)
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), s.base+"~") || e.IsDir() {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		if err := os.Remove(p); err != nil {
			s.log.Warn("cannot remove a stale temporary file", "path", p, "error", err)
		} else {
			s.log.Info("removed a temporary file left by an interrupted save", "path", p)
		}
	}
}

// Path returns the path of the store.
func (s *Store) Path() string { return s.path }

// Generation returns the path of generation n (1 is the newest).
func (s *Store) Generation(n int) string { return s.path + "." + strconv.Itoa(n) }

// Close releases the lock. It does not remove the lock file (removing it
// would let two processes lock different files). Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	f := s.lock
	s.lock = nil
	uerr := flock(f, syscall.LOCK_UN)
	if err := f.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	if uerr != nil {
		return fmt.Errorf("close store %s: unlock: %w", s.path, uerr)
	}
	return nil
}

// Load reads and decodes the store.
//
// If the file does not exist, the error satisfies errors.Is(err,
// fs.ErrNotExist): the caller is expected to create a new store.
//
// If it exists but cannot be read or decoded, Load logs the error and tries
// the generations <path>.1, <path>.2, … in order. The first that decodes is
// returned, with a LoadReport that says so; the broken file is preserved as
// <path>.broken-<UTC time> (a hard link, so the store path never stops
// existing) and the recovered Document is written over it (without
// rotating the generations, so no good generation is pushed out), so that
// the next start is clean. If nothing decodes, Load returns a *LoadError
// listing every file tried and why, and changes nothing on disk.
func (s *Store) Load() (*Document, *LoadReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil, nil, ErrClosed
	}
	data, doc, err := s.readFile(s.path)
	if err == nil {
		s.onDisk = data
		return doc, &LoadReport{Path: s.path}, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, gerr := os.Stat(s.Generation(1)); gerr == nil {
			return nil, nil, fmt.Errorf("load %s: %w (a previous generation %s exists: copy it to %s to restore it, or the daemon creates a new empty store)",
				s.path, fs.ErrNotExist, s.Generation(1), s.path)
		}
		return nil, nil, fmt.Errorf("load %s: %w", s.path, fs.ErrNotExist)
	}
	s.log.Error("qubes.xml is unusable; trying the previous generations", "path", s.path, "error", err)

	report := &LoadReport{FellBack: true, Errors: []error{err}}
	tried := []error{err}
	for i := 1; i <= max(s.keep, DefaultKeep); i++ {
		gen := s.Generation(i)
		_, gdoc, gerr := s.readFile(gen)
		if gerr != nil {
			tried = append(tried, gerr)
			if !errors.Is(gerr, fs.ErrNotExist) {
				report.Errors = append(report.Errors, gerr)
				s.log.Error("previous generation is unusable too", "path", gen, "error", gerr)
			}
			continue
		}
		report.Path = gen
		broken, perr := s.preserveBroken(data)
		if perr != nil {
			report.Errors = append(report.Errors, perr)
			s.log.Error("cannot preserve the broken qubes.xml; leaving it in place", "path", s.path, "error", perr)
		} else {
			report.Broken = broken
			if werr := s.writeLocked(Encode(gdoc), false); werr != nil {
				report.Errors = append(report.Errors, werr)
				s.log.Error("cannot write the recovered document back", "path", s.path, "error", werr)
			}
		}
		s.log.Warn("loaded a previous generation of qubes.xml; recent changes may be lost",
			"path", s.path, "used", gen, "broken_file_kept_as", report.Broken)
		return gdoc, report, nil
	}
	return nil, nil, &LoadError{Path: s.path, Tried: tried}
}

// readFile reads and decodes one file; the error names the file.
func (s *Store) readFile(path string) ([]byte, *Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err // *fs.PathError, names the file
	}
	doc, err := Decode(data)
	if err != nil {
		return data, nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return data, doc, nil
}

// preserveBroken keeps the current (broken) store as
// <path>.broken-<YYYYMMDDTHHMMSSZ>: a hard link, or a copy of data when
// links are not supported.
func (s *Store) preserveBroken(data []byte) (string, error) {
	stamp := time.Now().UTC().Format("20060102T150405Z")
	var lastErr error
	for n := 0; n < 100; n++ {
		name := s.path + ".broken-" + stamp
		if n > 0 {
			name += "-" + strconv.Itoa(n)
		}
		err := os.Link(s.path, name)
		if err == nil {
			if err := syncDir(s.dir); err != nil {
				return name, fmt.Errorf("preserve broken %s as %s: %w", s.path, name, err)
			}
			return name, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		lastErr = err
		if data == nil {
			break
		}
		// No hard links here: write a copy.
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, s.mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("preserve broken %s: %w", s.path, err)
		}
		_, werr := f.Write(data)
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(name)
			return "", fmt.Errorf("preserve broken %s as %s: %w", s.path, name, werr)
		}
		return name, syncDir(s.dir)
	}
	return "", fmt.Errorf("preserve broken %s: %w", s.path, lastErr)
}

// Save writes doc as the new content of the store, atomically and durably:
// the encoding is written to a temporary file in the same directory
// (<name>~NNNN), given the configured mode and group and fsynced; the
// generations are rotated (<path>.1 becomes <path>.2 …, the current file is
// hard-linked as <path>.1); the temporary file is renamed over the store
// and the directory is fsynced. Whenever the process dies, <path> holds
// either the old or the new content, complete. On error the temporary file
// is removed and the error names the file and the operation.
//
// Save refuses a Document that fails Check. Concurrent calls are
// serialized.
func (s *Store) Save(doc *Document) error {
	if err := doc.Check(); err != nil {
		return fmt.Errorf("save %s: invalid document: %w", s.path, err)
	}
	data := Encode(doc)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return ErrClosed
	}
	if s.onDisk != nil && bytes.Equal(data, s.onDisk) {
		return nil // already durable: an event that changed nothing
	}
	return s.writeLocked(data, true)
}

// writeLocked writes data over the store, rotating the generations first if
// rotate is set. s.mu is held.
func (s *Store) writeLocked(data []byte, rotate bool) (err error) {
	f, err := os.CreateTemp(s.dir, s.base+"~*")
	if err != nil {
		return fmt.Errorf("save %s: create a temporary file in %s: %w", s.path, s.dir, err)
	}
	tmp := f.Name()
	closed, renamed := false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("save %s: write %s: %w", s.path, tmp, err)
	}
	if err := f.Chmod(s.mode); err != nil {
		return fmt.Errorf("save %s: chmod %s: %w", s.path, tmp, err)
	}
	if s.gid >= 0 {
		if err := f.Chown(-1, s.gid); err != nil && !s.chownWarned {
			s.chownWarned = true
			s.log.Warn("cannot give qubes.xml to its group; continuing without", "path", tmp, "gid", s.gid, "error", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save %s: fsync %s: %w", s.path, tmp, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: close %s: %w", s.path, tmp, err)
	}
	if rotate {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("save %s: rename %s over it: %w", s.path, tmp, err)
	}
	renamed = true
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("save %s: %w", s.path, err)
	}
	s.onDisk = data
	return nil
}

// rotate shifts the generations up by one (dropping the oldest) and makes
// the current store generation 1. Each step is a rename, so a crash leaves
// at worst one generation missing or two generations alike, never a partial
// file.
func (s *Store) rotate() error {
	if s.keep <= 0 {
		return nil
	}
	if _, err := os.Lstat(s.path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for i := s.keep - 1; i >= 1; i-- {
		if err := os.Rename(s.Generation(i), s.Generation(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("save %s: rotate generations: %w", s.path, err)
		}
	}
	// Link the current file under a temporary name first, so that .1 is
	// replaced in one step.
	tmp := filepath.Join(s.dir, s.base+"~link")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save %s: rotate generations: %w", s.path, err)
	}
	if err := os.Link(s.path, tmp); err != nil {
		return fmt.Errorf("save %s: rotate generations: %w", s.path, err)
	}
	if err := os.Rename(tmp, s.Generation(1)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save %s: rotate generations: %w", s.path, err)
	}
	return nil
}

// syncDir fsyncs a directory, making the renames and links in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
