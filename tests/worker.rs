//! The built-in host's handler supervision, with stand-in handlers (small Python servers) that
//! exit with the codes whose rules `custom-handler-protocol.md` §1.7 gives.

use std::path::PathBuf;
use std::time::Duration;

use cargo_azfn::host::console::Console;
use cargo_azfn::host::worker::{Worker, WorkerConfig, WorkerState};

/// A handler that answers `GET /` on FUNCTIONS_CUSTOMHANDLER_PORT for `secs`, then exits with `code`.
fn handler(secs: f64, code: i32) -> WorkerConfig {
    handler_writing(secs, code, "")
}

/// [`handler`], writing `stderr` to its standard error just before it exits.
fn handler_writing(secs: f64, code: i32, stderr: &str) -> WorkerConfig {
    let script = format!(
        "import http.server, os, threading, sys\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       self.send_response(200); self.end_headers()\n\
         \x20   def log_message(self, *a): pass\n\
         s = http.server.HTTPServer(('127.0.0.1', int(os.environ['FUNCTIONS_CUSTOMHANDLER_PORT'])), H)\n\
         threading.Thread(target=s.serve_forever, daemon=True).start()\n\
         threading.Event().wait({secs})\n\
         sys.stderr.write({stderr:?}); sys.stderr.flush()\n\
         os._exit({code})\n"
    );
    WorkerConfig {
        program: PathBuf::from("python3"),
        args: vec!["-c".into(), script],
        dir: std::env::temp_dir(),
        app_root: std::env::temp_dir(),
        env: vec![],
    }
}

async fn wait_state(worker: &Worker, pred: impl Fn(&WorkerState) -> bool) -> WorkerState {
    for _ in 0..400 {
        let s = worker.state();
        if pred(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("state never reached; last {:?}", worker.state());
}

#[tokio::test]
async fn exit_code_zero_is_not_restarted() {
    let worker = Worker::start(handler(0.3, 0), Console::new()).await.unwrap();
    let s = wait_state(&worker, |s| matches!(s, WorkerState::Stopped(_))).await;
    assert!(matches!(&s, WorkerState::Stopped(why) if why.contains("exited with code 0")), "{s:?}");
    let err = worker.invoke("Hello", "id", b"{}".to_vec()).await.unwrap_err();
    assert!(err.contains("code 0"), "{err}");
}

#[tokio::test]
async fn exit_code_200_restarts_without_counting_as_an_error() {
    let worker = Worker::start(handler(0.3, 200), Console::new()).await.unwrap();
    let WorkerState::Ready(first) = worker.state() else { panic!("not ready") };
    // Several intentional restarts in a row never stop the host.
    for _ in 0..4 {
        let prev = match worker.state() {
            WorkerState::Ready(p) => p,
            _ => 0,
        };
        wait_state(&worker, |s| matches!(s, WorkerState::Ready(p) if *p != prev && *p != 0)).await;
    }
    assert_ne!(worker.state(), WorkerState::Ready(first));
    assert!(worker.fatal.borrow().is_none());
    worker.stop().await;
}

#[tokio::test]
async fn three_crashes_stop_the_host() {
    let worker = Worker::start(handler(0.2, 3), Console::new()).await.unwrap();
    let mut fatal = worker.fatal.clone();
    let why =
        tokio::time::timeout(Duration::from_secs(20), fatal.wait_for(|f| f.is_some())).await.unwrap().unwrap().clone();
    let why = why.unwrap();
    assert!(why.contains("exited with code 3") && why.contains("Exceeded http worker restart retry count"), "{why}");
}

/// azure-functions-host (89dc438) `WorkerProcess.OnProcessExited`, line 181: `new
/// WorkerProcessExitException($"{Process.StartInfo.FileName} exited with code {Process.ExitCode}
/// (0x{Process.ExitCode.ToString("X")})", new Exception(sanitizedExceptionMessage))`, the inner
/// message the last 3 stderr lines logged as errors (`maxNumberOfErrorMessages = 3`), joined by `,`;
/// a custom handler's stderr lines are errors unless they mention "warn" (`ParseErrorMessageAndLog`
/// with `HttpWorkerDescription.UseStdErrorStreamForErrorsOnly = true`).
#[tokio::test]
async fn a_crash_is_reported_with_the_handlers_last_error_lines() {
    let stderr = "warn: slow start\nboom: database unreachable\nfirst\nsecond\nthird\n";
    let worker = Worker::start(handler_writing(0.2, 3, stderr), Console::new()).await.unwrap();
    let mut fatal = worker.fatal.clone();
    let why =
        tokio::time::timeout(Duration::from_secs(20), fatal.wait_for(|f| f.is_some())).await.unwrap().unwrap().clone();
    let why = why.unwrap();
    assert!(why.contains("exited with code 3 (0x3): first,second,third"), "{why}");
    assert!(!why.contains("boom") && !why.contains("slow start"), "{why}");
}

#[tokio::test]
async fn a_handler_that_never_listens_fails_to_start_with_the_reason() {
    let config =
        WorkerConfig { program: PathBuf::from("/bin/sh"), args: vec!["-c".into(), "exit 7".into()], ..handler(0.0, 0) };
    let err = Worker::start(config, Console::new()).await.unwrap_err();
    assert!(err.contains("exited with exit status: 7 before it was ready"), "{err}");
    assert!(err.contains("Exceeded http worker restart retry count"), "{err}");
}
