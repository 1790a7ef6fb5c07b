//! The command line of an azfn app binary: `serve` (what the host runs), `start`, `new` and `package`.
//!
//! An app's `main` hands its functions to [`main`], and the binary gets the commands:
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

use std::path::PathBuf;
use std::process::ExitCode;

use crate::app::App;

const HELP: &str = "\
USAGE:
    {bin} [serve]                       serve the functions; the Functions host runs this and sets
                                        FUNCTIONS_CUSTOMHANDLER_PORT
    {bin} start [--port 7071] [--builtin]
                                        run the app locally from its root: under `func start` when
                                        Core Tools is on PATH, otherwise (or with --builtin) under
                                        azfn's built-in host, with Azurite started when needed
    {bin} package [--out DIR] [--zip] [--max-glibc 2.31|any]
                                        lay out the app for deployment in DIR (default dist/azfn-app),
                                        and with --zip also DIR.zip; refuses a handler that needs a
                                        newer glibc than Azure's workers have (2.31): build it with
                                        scripts/package
    {bin} new <kind> <Name> [options]   add a function: functions/<Name>/function.json, a handler module
                                        with a test in src/functions/, and its registration. Kinds:
                                        http (--route R --methods get,post --auth anonymous|function|admin),
                                        timer (--schedule '0 */5 * * * *'), queue (--queue Q), blob (--path P),
                                        servicebus (--queue Q), eventgrid; storage kinds take --connection C
    {bin} help | --help                 show this help
    {bin} --version                     show the version

ENVIRONMENT (serve):
    FUNCTIONS_CUSTOMHANDLER_PORT   the port to listen on (127.0.0.1)
    FUNCTIONS_APP_ROOT_PATH        the app root holding host.json and the function folders (default: .)
    RUST_LOG                       log filter (default: info)
";

/// Runs the command given on the command line for the app that `app` builds.
pub fn main(app: fn() -> App) -> ExitCode {
    let bin =
        std::env::args().next().and_then(|a| PathBuf::from(a).file_name().map(|n| n.to_string_lossy().into_owned()));
    let bin = bin.unwrap_or_else(|| "azfn".to_owned());
    let help = HELP.replace("{bin}", &bin);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(app()),
        Some("start") => {
            let root = match std::env::current_dir() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{bin} start: {e}");
                    return ExitCode::from(1);
                }
            };
            let binary = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&bin));
            match crate::host::start::StartOptions::parse(&args[1..], root, binary) {
                Ok(opts) => crate::host::start::start(app(), opts),
                Err(e) => {
                    eprintln!("{bin} start: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some("package") => match package_command(app(), &args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{bin} package: {e}");
                ExitCode::from(1)
            }
        },
        Some("new") => match new_command(&args[1..]) {
            Ok(files) => {
                for f in files {
                    println!("wrote {f}");
                }
                if args.get(1).is_some_and(|k| k == "blob") {
                    println!(
                        "note: this is the polling blob trigger, which runs on Elastic Premium and Consumption only; \
                         Flex Consumption refuses it. For every plan, have Event Grid put BlobCreated events on a \
                         queue and use a queue trigger (docs/adr/0004-blob-events.md)"
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{bin} new: {e}");
                ExitCode::from(1)
            }
        },
        Some("-h" | "--help" | "help") => {
            print!("{help}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("{bin} {} (azfn {})", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("{bin}: unknown command {other:?}\n\n{help}");
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

fn new_command(args: &[String]) -> Result<Vec<String>, String> {
    let (Some(kind), Some(name)) = (args.first(), args.get(1)) else {
        return Err(format!("usage: new <kind> <Name> [options]; kinds: {}", crate::scaffold::KINDS.join(", ")));
    };
    let mut opts = crate::scaffold::Options::new();
    let mut it = args[2..].iter();
    while let Some(flag) = it.next() {
        let key = flag
            .strip_prefix("--")
            .filter(|k| ["route", "methods", "auth", "schedule", "queue", "path", "connection"].contains(k));
        let Some(key) = key else { return Err(format!("unknown option {flag:?}")) };
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        opts.insert(key.to_owned(), value.clone());
    }
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    crate::scaffold::new_function(&root, kind, name, &opts)
}

fn package_command(app: App, args: &[String]) -> Result<(), String> {
    let mut out = PathBuf::from("dist/azfn-app");
    let mut zip = false;
    let mut max_glibc = Some(crate::glibc::AZURE_GLIBC_FLOOR);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = PathBuf::from(it.next().ok_or("--out needs a folder")?),
            "--zip" => zip = true,
            "--max-glibc" => {
                let value = it.next().ok_or("--max-glibc needs a version such as 2.31, or `any`")?;
                max_glibc =
                    match value.as_str() {
                        "any" => None,
                        v => Some(crate::glibc::GlibcVersion::parse(v).ok_or_else(|| {
                            format!("--max-glibc {v:?} is not a glibc version such as 2.31, or `any`")
                        })?),
                    };
            }
            other => return Err(format!("unknown option {other:?} (expected --out DIR, --zip, --max-glibc V)")),
        }
    }
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err("Azure Functions on Linux runs x86-64 Linux binaries: build with \
                    `cargo build --release --target x86_64-unknown-linux-gnu` and package with that binary"
            .to_owned());
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: packaging a debug build; `cargo build --release` first for a faster, smaller handler");
    }
    let binary = std::env::current_exe().map_err(|e| format!("cannot find this program's binary: {e}"))?;
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let done = crate::package::package(&app, &root, &binary, &out, zip, max_glibc)?;
    println!(
        "packaged {} functions ({}) into {}",
        done.functions.len(),
        done.functions.join(", "),
        done.folder.display()
    );
    // With `--max-glibc any` the need was not checked; it is still worth saying.
    match done.glibc.or_else(|| crate::glibc::required_glibc(&binary).ok()) {
        Some(crate::glibc::GlibcNeed::None) => println!("handler: needs no glibc"),
        Some(crate::glibc::GlibcNeed::AtLeast(v)) => println!("handler: needs glibc {v} or newer"),
        None => {}
    }
    if let Some(z) = done.zip {
        println!("zip: {}", z.display());
    }
    Ok(())
}
