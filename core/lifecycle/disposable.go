package lifecycle

import "github.com/qubesgo/qubesd/core/qubes"

// cleanupDisposable removes q and its volumes once it has stopped, when q is
// a disposable with auto_cleanup.
//
// TODO(issue 6): disposables.
func (m *Manager) cleanupDisposable(q *qubes.Qube) {}
