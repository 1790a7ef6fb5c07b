//! The entry point of an app binary: serve the functions, or answer `cargo azfn`'s check.
//!
//! An app's `main` hands its functions to [`main`]:
//!
//! ```no_run
//! fn app() -> azfn::App {
//!     azfn::App::new() // .function("Hello", hello) ...
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     azfn::cli::main(app)
//! }
//! ```
//!
//! With no arguments (how the Functions host starts it) the binary serves on
//! `FUNCTIONS_CUSTOMHANDLER_PORT`. The developer tool runs it as `<binary> check` with
//! `FUNCTIONS_APP_ROOT_PATH` set, before it stages or packages the app: the binary then compares
//! its registered handlers with the function.json files and exits 0, or 1 with the problems on
//! stderr. Everything else a developer does (init, new, start, invoke, package) is `cargo azfn`'s,
//! so the deployed handler carries none of it.

use std::process::ExitCode;

use crate::app::App;
use crate::function_json::AppMetadata;

const HELP: &str = "\
An Azure Functions custom handler built with azfn.

USAGE:
    {bin} [serve]    serve the functions; the Functions host runs this and sets FUNCTIONS_CUSTOMHANDLER_PORT
    {bin} check      check the registered handlers against the function.json files, then exit
    {bin} --help     show this help
    {bin} --version  show the version

ENVIRONMENT:
    FUNCTIONS_CUSTOMHANDLER_PORT   the port to listen on (127.0.0.1)
    FUNCTIONS_APP_ROOT_PATH        the app root holding host.json and the function folders (default: .)
    RUST_LOG                       log filter (default: info)

Develop, run and package the app with `cargo azfn` (cargo install cargo-azfn; cargo azfn --help).
";

/// Runs the command given on the command line for the app that `app` builds.
pub fn main(app: fn() -> App) -> ExitCode {
    let bin = std::env::args()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "handler".to_owned());
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(app()),
        Some("check") => check(app()),
        Some("-h" | "--help" | "help") => {
            print!("{}", HELP.replace("{bin}", &bin));
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("{bin} (azfn {})", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("{bin}: unknown command {other:?}; `{bin} --help` lists the commands");
            ExitCode::from(2)
        }
    }
}

fn serve(app: App) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(crate::run(app)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

fn check(app: App) -> ExitCode {
    let checked = AppMetadata::discover().map_err(|e| e.to_string()).and_then(|meta| {
        app.check(&meta).map_err(|e| e.to_string())?;
        Ok(meta.functions.len())
    });
    match checked {
        Ok(n) => {
            println!("{n} functions, each with its handler");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
