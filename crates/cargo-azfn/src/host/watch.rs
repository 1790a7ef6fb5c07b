//! `cargo azfn start --watch`: changes to the app's sources, as a stream of debounced events.
//!
//! The `notify` crate watches `src/` and `functions/` recursively and the app root itself (for
//! host.json and Cargo.toml; a single file is not watched directly, because editors replace files by
//! renaming). Events are gathered until the tree has been quiet for [`QUIET`], so that one save (or
//! a `git checkout`) gives one rebuild.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// How long the tree must be quiet before a change is reported.
pub const QUIET: Duration = Duration::from_millis(300);

/// A change worth a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// A path that changed, relative to the app root, for the console.
    pub what: String,
    /// Whether the app's metadata changed (a function.json or host.json): the host restarts then,
    /// instead of only swapping the handler.
    pub app: bool,
}

/// What a changed path means, or `None` when it does not matter (build output, editor backups).
pub fn classify(root: &Path, path: &Path) -> Option<Change> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = rel.file_name()?.to_string_lossy().into_owned();
    if is_editor_file(&name) {
        return None;
    }
    let what = rel.display().to_string();
    match first.as_str() {
        "src" => Some(Change { what, app: false }),
        // The metadata, and function folders coming or going (a new folder's own files can be
        // written before the watch on it starts, so its creation is what tells); anything else in a
        // function's folder is not the host's.
        "functions" if name == "function.json" || rel.components().count() <= 2 => Some(Change { what, app: true }),
        // The settings are read when the host starts: a change restarts it.
        "host.json" | "local.settings.json" => Some(Change { what, app: true }),
        "Cargo.toml" | "Cargo.lock" => Some(Change { what, app: false }),
        _ => None,
    }
}

/// Whether `name` is a file editors write beside the one being edited (swap, backup, lock and
/// atomic-save files) rather than a source.
fn is_editor_file(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || [".swp", ".swx", ".swo", ".tmp", ".bak", ".orig", "___jb_tmp___", "___jb_old___"].iter().any(|s| name.ends_with(s))
        // vim's write test file, `4913`, and other all-digit names.
        || name.chars().all(|c| c.is_ascii_digit())
}

/// Starts watching the app in `root`; changes arrive on the receiver, debounced. The watcher lives
/// as long as the receiver is read (it stops when the receiver is dropped).
pub fn watch(root: &Path) -> Result<mpsc::Receiver<Change>, String> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            for p in event.paths {
                let _ = raw_tx.send(p);
            }
        }
    })
    .map_err(|e| format!("cannot watch the app for changes: {e}"))?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    for (dir, mode) in [("src", RecursiveMode::Recursive), ("functions", RecursiveMode::Recursive)] {
        let path = root.join(dir);
        if path.is_dir() {
            watcher.watch(&path, mode).map_err(|e| format!("cannot watch {}: {e}", path.display()))?;
        }
    }
    watcher.watch(&root, RecursiveMode::NonRecursive).map_err(|e| format!("cannot watch {}: {e}", root.display()))?;

    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let _watcher = watcher;
        while let Some(first) = raw_rx.recv().await {
            let mut change = classify(&root, &first);
            // Gather until quiet.
            while let Ok(Some(next)) = tokio::time::timeout(QUIET, raw_rx.recv()).await {
                if let Some(c) = classify(&root, &next) {
                    change = Some(match change {
                        Some(prev) => Change { what: prev.what, app: prev.app || c.app },
                        None => c,
                    });
                }
            }
            if let Some(c) = change
                && tx.send(c).await.is_err()
            {
                return;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_swap_the_handler_and_metadata_restarts_the_host() {
        let root = Path::new("/app");
        let c = |p: &str| classify(root, &root.join(p));
        assert_eq!(c("src/functions/hello.rs"), Some(Change { what: "src/functions/hello.rs".into(), app: false }));
        assert!(c("functions/Hello/function.json").unwrap().app);
        assert!(c("host.json").unwrap().app);
        assert!(!c("Cargo.toml").unwrap().app);
        assert_eq!(c("target/debug/app"), None);
        assert_eq!(c("src/.hello.rs.swp"), None);
        assert!(c("local.settings.json").unwrap().app, "settings are read at start: the host restarts");
        for temp in ["src/functions/4913", "src/functions/#hello.rs#", "src/hello.rs.tmp", "src/x.rs___jb_tmp___"] {
            assert_eq!(c(temp), None, "{temp}");
        }
        assert_eq!(c("functions/Hello/notes.txt"), None);
        assert!(c("functions/Ping").unwrap().app, "a new function's folder restarts the host");
    }
}
