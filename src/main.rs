//! `azfn`: the orders app's Azure Functions custom handler.
//!
//! The Functions host starts it with `FUNCTIONS_CUSTOMHANDLER_PORT` set; it then serves every
//! function under `functions/` (or the staged app root in `FUNCTIONS_APP_ROOT_PATH`).
//! `azfn package --zip` lays the app out for deployment; `azfn --help` lists the commands.

mod functions;

fn main() -> std::process::ExitCode {
    azfn::cli::main(functions::app)
}
