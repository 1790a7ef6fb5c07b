//! `azfn`: the orders app's Azure Functions custom handler.
//!
//! The Functions host starts it with `FUNCTIONS_CUSTOMHANDLER_PORT` set; it then serves every
//! function under `functions/` (or the staged app root in `FUNCTIONS_APP_ROOT_PATH`).

mod functions;

use std::process::ExitCode;

const HELP: &str = "\
azfn: the orders app as an Azure Functions custom handler

USAGE:
    azfn [serve]      serve the functions (the Functions host runs this; it sets FUNCTIONS_CUSTOMHANDLER_PORT)
    azfn --help       show this help
    azfn --version    show the version

ENVIRONMENT:
    FUNCTIONS_CUSTOMHANDLER_PORT   the port to listen on (127.0.0.1)
    FUNCTIONS_APP_ROOT_PATH        the app root holding host.json and the function folders (default: .)
    RUST_LOG                       log filter (default: info)
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None | Some("serve") => {}
        Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("azfn {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("azfn: unknown command {other:?}\n\n{HELP}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("azfn: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(azfn::run(functions::app()))
}
