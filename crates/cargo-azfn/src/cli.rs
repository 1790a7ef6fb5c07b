//! The command line of `cargo azfn`: the commands, their options and their help, with clap.
//!
//! Cargo runs `cargo-azfn azfn <args>` for `cargo azfn <args>`; the binary run directly
//! (`cargo-azfn <args>`) takes the same arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cargo_build::BuildOptions;
use crate::glibc::{AZURE_GLIBC_FLOOR, GlibcNeed, GlibcVersion};
use crate::host::start::{HandlerSource, StartOptions};
use crate::init::AzfnSource;
use crate::invoke::InvokeOptions;

/// `cargo` as clap sees it: `cargo azfn ...`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap::builder::Styles::plain())]
pub enum Cargo {
    /// Build, run and deploy Azure Functions custom handlers written in Rust.
    Azfn(Azfn),
}

/// `cargo azfn`.
#[derive(Debug, Args)]
#[command(
    version,
    about = "Build, run and deploy Azure Functions custom handlers written in Rust",
    long_about = "Build, run and deploy Azure Functions custom handlers written in Rust.\n\n\
                  A new app: `cargo azfn init my-app && cd my-app && cargo azfn start`, then \
                  `curl http://127.0.0.1:7071/api/hello`.",
    propagate_version = true
)]
pub struct Azfn {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new app: Cargo.toml, host.json, local.settings.json, a Hello function with its test,
    /// and what deploys it: infra/ (Bicep), azure.yaml (azd up) and a GitHub Actions workflow.
    #[command(
        after_help = "Then: cd <DIR> && cargo test && cargo azfn start\nDeploy: azd up (see the app's README.md)"
    )]
    Init(InitArgs),
    /// Add a function (or a durable orchestrator or activity) to the app in the current folder.
    #[command(after_help = NEW_HELP)]
    New(NewArgs),
    /// Build the app and run it locally: under Core Tools' `func start` when it is on PATH, else (or
    /// with --builtin) under azfn's built-in Functions host, with Azurite started when needed.
    Start(StartArgs),
    /// Run one function once through the running local host and print what it produced.
    #[command(after_help = INVOKE_HELP)]
    Invoke(InvokeArgs),
    /// Build the handler for release and lay the app out for deployment (a folder, and a zip).
    #[command(after_help = PACKAGE_HELP)]
    Package(PackageArgs),
    /// Print a shell completion script for `cargo-azfn <command>` (the tool run directly).
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
}

const NEW_HELP: &str = "\
Kinds and their options:
  http          --route R --methods get,post --auth anonymous|function|admin
                [--starts ORCHESTRATOR]: the handler starts that orchestration through its
                durable client (ctx.durable()) and answers 202 with the management URLs
  timer         --schedule '0 */5 * * * *' (NCRONTAB with seconds)
  queue         --queue Q [--connection SETTING]
  blob          --path container/{name} [--connection SETTING] (polling trigger: not on Flex Consumption)
  servicebus    --queue Q [--connection SETTING]
  eventgrid
  Any function: --output queue:NAME | blob:CONTAINER/PATH | table:NAME (repeatable) adds an
                output binding to its function.json
  orchestrator  a durable orchestration in src/functions/orchestrations/
  activity      a durable activity in src/functions/orchestrations/

Examples:
  cargo azfn new http GetInvoice --route invoices/{id} --methods get
  cargo azfn new queue ShipNotice --queue shipments --output table:shipments
  cargo azfn new orchestrator ShipOrder && cargo azfn new activity PrintLabel
  cargo azfn new http StartShipping --route shipments --starts ShipOrder";

const INVOKE_HELP: &str = "\
The data is JSON, its shape set by the function's trigger:
  HTTP          the request body; --method and --path choose the request (default: the route)
  queue         the message: a JSON string is the message text, anything else is sent as JSON
  Service Bus   the message, as for a queue
  blob          the path of an existing blob, as a JSON string: '\"container/name.txt\"'
  timer         nothing: the function runs as if its schedule fired
  Event Grid    one event (Event Grid schema or CloudEvents), e.g.
                '{\"id\": \"1\", \"eventType\": \"Demo.Happened\", \"subject\": \"demo\",
                  \"eventTime\": \"2026-01-01T00:00:00Z\", \"data\": {}, \"dataVersion\": \"1.0\"}'

Examples:
  cargo azfn invoke Hello --method get --path '/api/hello?name=Ada'
  cargo azfn invoke ProcessOrder --data '{\"orderId\": \"o-1\", \"customerId\": \"c-1\", \"currency\": \"EUR\", \"items\": [], \"createdAt\": \"2026-01-01T00:00:00Z\"}'
  cargo azfn invoke CatalogEvents --file event.json
  cargo azfn invoke OrderSummary";

const COMPLETIONS_HELP: &str = "\
Shells complete `cargo`'s own arguments with cargo's script, which does not reach into external
subcommands; so the script completes the tool run directly, `cargo-azfn <command>`, which takes the
same arguments as `cargo azfn <command>`. For bash:
  cargo azfn completions bash > ~/.local/share/bash-completion/completions/cargo-azfn
For zsh: cargo azfn completions zsh > \"${fpath[1]}/_cargo-azfn\"";

const PACKAGE_HELP: &str = "\
The handler must start on Azure's Linux workers, whose glibc (2.31) is older than a current build
machine's. `package` builds it with cargo-zigbuild for x86_64-unknown-linux-gnu.2.31, installing
Zig (PyPI ziglang, with pip) and cargo-zigbuild (crates.io) on first use into ~/.cache/azfn
($AZFN_CACHE_DIR), so Python 3 with pip is the only prerequisite besides Cargo. It then reads the
binary's glibc needs, refuses one that needs more than --max-glibc, starts the packaged handler to
check that it answers, and writes dist/<app>/ and dist/<app>.zip (mode 0755 kept for the binary).

Other ways: --native (plain cargo build, for a build machine as old as Azure's), --target
x86_64-unknown-linux-musl (static; needs `rustup target add` and a musl C toolchain for crates with
C code), or --handler <a binary you built>.

Deploy the zip: az functionapp deploy --resource-group <group> --name <app> --src-path dist/<app>.zip --type zip
(or `azd deploy` in an app made by `cargo azfn init`; see its infra/ and azure.yaml).";

/// `init`'s options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to create the app in (new or empty).
    pub dir: PathBuf,
    /// The package and handler name (default: from the folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Depend on the azfn runtime in this folder (default: the copy this tool was built from, if
    /// any; else the crates.io version of this tool).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["azfn_git", "azfn_version"])]
    pub azfn_path: Option<PathBuf>,
    /// Depend on this crates.io version of the azfn runtime.
    #[arg(long, value_name = "VERSION", conflicts_with = "azfn_git")]
    pub azfn_version: Option<String>,
    /// Depend on the azfn runtime from this git repository.
    #[arg(long, value_name = "URL")]
    pub azfn_git: Option<String>,
    /// With --azfn-git: the branch, tag or commit.
    #[arg(long, value_name = "REV", requires = "azfn_git")]
    pub azfn_rev: Option<String>,
}

/// `new`'s options.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// What to add: http, timer, queue, blob, servicebus, eventgrid, orchestrator or activity.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::scaffold::KINDS))]
    pub kind: String,
    /// The function's name: a letter, then letters, digits, _ or -.
    pub name: String,
    /// http: the route template (default: the name, lowercased).
    #[arg(long)]
    pub route: Option<String>,
    /// http: the methods, comma-separated (default: get,post).
    #[arg(long)]
    pub methods: Option<String>,
    /// http: the authorization level: anonymous, function or admin (default: function).
    #[arg(long, value_parser = ["anonymous", "function", "admin"])]
    pub auth: Option<String>,
    /// timer: the NCRONTAB schedule, with seconds (default: every 5 minutes).
    #[arg(long)]
    pub schedule: Option<String>,
    /// queue, servicebus: the queue's name (default: the name, lowercased).
    #[arg(long)]
    pub queue: Option<String>,
    /// blob: the path pattern, `container/{name}`.
    #[arg(long)]
    pub path: Option<String>,
    /// queue, blob, servicebus: the app setting that holds the connection.
    #[arg(long)]
    pub connection: Option<String>,
    /// http: start this orchestrator (one of the app's) with the request body as its input.
    #[arg(long, value_name = "ORCHESTRATOR")]
    pub starts: Option<String>,
    /// An output binding: queue:NAME, blob:CONTAINER/PATH or table:NAME (repeat for more).
    #[arg(long = "output", value_name = "KIND:TARGET")]
    pub outputs: Vec<String>,
}

/// `start`'s options.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The HTTP port (0: any free one); default: local.settings.json's `Host.LocalHttpPort`, else
    /// 7071, as Core Tools.
    #[arg(long, short)]
    pub port: Option<u16>,
    /// Use the built-in host even when Core Tools' `func` is on PATH.
    #[arg(long)]
    pub builtin: bool,
    /// Rebuild on a change under src/, functions/ or host.json and swap the handler, without losing
    /// queue messages or durable work in flight (built-in host).
    #[arg(long)]
    pub watch: bool,
    /// Check function keys as Azure does: `function` and `admin` routes, `/admin/...` and webhooks
    /// answer 401 without `x-functions-key` or `?code=` (keys from AZFN_MASTER_KEY,
    /// AZFN_FUNCTION_KEY and AZFN_EVENTGRID_KEY, generated when unset; built-in host).
    #[arg(long)]
    pub keys: bool,
    /// Build with --release.
    #[arg(long, conflicts_with = "handler")]
    pub release: bool,
    /// Run this prebuilt handler binary instead of building the app (no --watch).
    #[arg(long, value_name = "BINARY", conflicts_with = "watch")]
    pub handler: Option<PathBuf>,
    /// The app's root folder (default: the current folder).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// `invoke`'s options.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function to run.
    pub function: String,
    /// The input, as JSON (see below for each trigger).
    #[arg(long, short, conflicts_with = "file")]
    pub data: Option<String>,
    /// Read the input from this file (JSON).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// HTTP functions: the method (default: POST with data when allowed, else the first method).
    #[arg(long, short = 'X')]
    pub method: Option<String>,
    /// HTTP functions: the path and query to call (default: the route, when it has no parameters).
    #[arg(long)]
    pub path: Option<String>,
    /// The local host's port.
    #[arg(long, short, default_value_t = 7071)]
    pub port: u16,
    /// The app's root folder, for the function.json files (default: the current folder).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// `package`'s options.
#[derive(Debug, Args)]
pub struct PackageArgs {
    /// The folder to write; the zip is <OUT>.zip (default: dist/<app> in the app's root, with <app>
    /// the Cargo package's name).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write only the folder, no zip.
    #[arg(long)]
    pub no_zip: bool,
    /// (The zip is written by default; kept for older scripts.)
    #[arg(long, hide = true, conflicts_with = "no_zip")]
    pub zip: bool,
    /// The newest glibc the handler may need ("any": no check).
    #[arg(long, value_name = "X.Y|any", default_value = "2.31")]
    pub max_glibc: String,
    /// Build with plain `cargo build --release` for this machine instead of cargo-zigbuild (the
    /// glibc check still applies).
    #[arg(long, conflicts_with_all = ["handler", "target"])]
    pub native: bool,
    /// Do not start the packaged handler to check that it answers (it is started with the app's
    /// local.settings.json `Values`; skip it for a handler that needs more to start).
    #[arg(long)]
    pub no_start_check: bool,
    /// Build with plain `cargo build --release --target <TARGET>`, e.g. x86_64-unknown-linux-musl.
    #[arg(long)]
    pub target: Option<String>,
    /// Package this prebuilt handler binary instead of building one.
    #[arg(long, value_name = "BINARY", conflicts_with = "target")]
    pub handler: Option<PathBuf>,
    /// The app's root folder (default: the current folder).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// `completions`' options.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Parses the command line (with or without Cargo's `azfn` word) and runs the command.
pub fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|a| a != "azfn") {
        args.insert(1, "azfn".into());
    }
    let Cargo::Azfn(azfn) = Cargo::parse_from(args);
    match run(azfn.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn current_dir(root: Option<PathBuf>) -> Result<PathBuf, String> {
    match root {
        Some(r) => Ok(r),
        None => std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}")),
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Init(a) => {
            let source = match (a.azfn_path, a.azfn_git, a.azfn_version) {
                (Some(p), _, _) => AzfnSource::Path(std::path::absolute(&p).map_err(|e| e.to_string())?),
                (None, Some(url), _) => AzfnSource::Git { url, rev: a.azfn_rev },
                (None, None, Some(v)) => AzfnSource::Registry(v),
                (None, None, None) => AzfnSource::beside_this_tool()
                    .unwrap_or_else(|| AzfnSource::Registry(env!("CARGO_PKG_VERSION").to_owned())),
            };
            let name = match a.name {
                Some(n) => n,
                None => crate::init::package_name(&a.dir)?,
            };
            crate::init::check_package_name(&name)?;
            std::fs::create_dir_all(&a.dir).map_err(|e| format!("cannot create {}: {e}", a.dir.display()))?;
            for f in crate::init::init(&a.dir, &name, &source)? {
                println!("wrote {}", a.dir.join(f).display());
            }
            println!("\nnext: cd {} && cargo test && cargo azfn start", a.dir.display());
            println!(
                "deploy: azd up (infra/ and azure.yaml), or push to GitHub (.github/workflows/deploy.yml); see README.md"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::New(a) => {
            let mut opts = crate::scaffold::Options::new();
            let pairs = [
                ("route", a.route),
                ("methods", a.methods),
                ("auth", a.auth),
                ("schedule", a.schedule),
                ("queue", a.queue),
                ("path", a.path),
                ("connection", a.connection),
                ("starts", a.starts),
                ("outputs", (!a.outputs.is_empty()).then(|| a.outputs.join(";"))),
            ];
            for (k, v) in pairs {
                if let Some(v) = v {
                    opts.insert(k.to_owned(), v);
                }
            }
            let root = current_dir(None)?;
            for f in crate::scaffold::new_function(&root, &a.kind, &a.name, &opts)? {
                println!("wrote {f}");
            }
            if a.kind == "blob" {
                println!(
                    "note: this is the polling blob trigger, which runs on Elastic Premium and Consumption only; \
                     Flex Consumption refuses it. For every plan, have Event Grid put BlobCreated events on a \
                     queue and use a queue trigger (docs/adr/0004-blob-events.md in the azfn repository)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Start(a) => {
            let root = std::path::absolute(current_dir(a.root)?).map_err(|e| e.to_string())?;
            let handler = match a.handler {
                Some(h) => HandlerSource::Prebuilt(std::path::absolute(h).map_err(|e| e.to_string())?),
                None => HandlerSource::Cargo(BuildOptions { release: a.release, ..BuildOptions::default() }),
            };
            let local_port = || crate::host::settings::Settings::load(&root).ok().and_then(|s| s.host.local_http_port);
            let port = a.port.or_else(local_port).unwrap_or(7071);
            let opts = StartOptions { root, port, builtin: a.builtin, watch: a.watch, keys: a.keys, handler };
            Ok(crate::host::start::start(opts))
        }
        Command::Invoke(a) => {
            let data = match (a.data, a.file) {
                (Some(d), _) => Some(d),
                (None, Some(f)) => {
                    Some(std::fs::read_to_string(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?)
                }
                (None, None) => None,
            };
            let opts = InvokeOptions {
                function: a.function,
                data,
                url: format!("http://127.0.0.1:{}", a.port),
                method: a.method,
                path: a.path,
            };
            let root = current_dir(a.root)?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            let done = rt.block_on(crate::invoke::invoke(&root, &opts))?;
            if done.ok {
                println!("{}", done.text);
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{}", done.text);
                Ok(ExitCode::from(1))
            }
        }
        Command::Package(a) => package(a).map(|()| ExitCode::SUCCESS),
        Command::Completions(a) => {
            let mut cmd = Azfn::augment_args(clap::Command::new("cargo-azfn"));
            clap_complete::generate(a.shell, &mut cmd, "cargo-azfn", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn package(a: PackageArgs) -> Result<(), String> {
    let max_glibc = match a.max_glibc.as_str() {
        "any" => None,
        v => Some(
            GlibcVersion::parse(v)
                .ok_or_else(|| format!("--max-glibc {v:?} is not a glibc version such as 2.31, or `any`"))?,
        ),
    };
    let root = std::path::absolute(current_dir(a.root)?).map_err(|e| e.to_string())?;
    if !root.join("host.json").is_file() {
        return Err(format!("{} has no host.json: run `cargo azfn package` from the app's root", root.display()));
    }
    let binary = match a.handler {
        Some(h) => std::path::absolute(h).map_err(|e| e.to_string())?,
        None => {
            let bin = azfn::function_json::AppMetadata::load(&root).ok().and_then(|m| m.host.executable);
            let mut opts = BuildOptions { release: true, target: a.target.clone(), bin, ..BuildOptions::default() };
            if a.target.is_none() && !a.native {
                // Azure's workers: glibc 2.31 through Zig, installed on first use.
                opts.zigbuild = Some(crate::cross::ZigBuild::ensure()?);
                crate::cross::ensure_rust_target(&root)?;
                opts.target = Some(crate::cross::zig_target());
                eprintln!("cargo azfn: building the handler for {} with cargo-zigbuild", crate::cross::zig_target());
            }
            crate::cargo_build::build(&root, &opts)?
        }
    };
    // Relative to the current folder, as every path on the command line (the default, to the app's).
    let out = match a.out {
        Some(out) => std::path::absolute(out).map_err(|e| e.to_string())?,
        None => root.join("dist").join(crate::package::app_name(&root)),
    };
    let done = crate::package::package(&root, &binary, &out, !a.no_zip, max_glibc)?;
    println!(
        "packaged {} functions ({}) into {}",
        done.functions.len(),
        done.functions.join(", "),
        done.folder.display()
    );
    // With `--max-glibc any` the need was not checked; it is still worth saying.
    match done.glibc.or_else(|| crate::glibc::required_glibc(&binary).ok()) {
        Some(GlibcNeed::None) => println!("handler: needs no glibc"),
        Some(GlibcNeed::AtLeast(v)) => {
            println!("handler: needs glibc {v} or newer (Azure's floor: {AZURE_GLIBC_FLOOR})")
        }
        None => {}
    }
    if a.no_start_check {
        println!("not started here (--no-start-check)");
    } else {
        // With the app's local settings, as `cargo azfn start` runs it.
        let env = crate::host::settings::Settings::load(&root).map(|s| s.missing_from_env()).unwrap_or_default();
        match crate::package::smoke_start(&done.folder, &env)? {
            true => println!(
                "checked: the packaged handler starts from {} and answers the host's probe",
                done.folder.display()
            ),
            false => println!("not started here: the handler is built for another system"),
        }
    }
    if let Some(z) = done.zip {
        println!("zip: {}", z.display());
        println!(
            "deploy: az functionapp deploy --resource-group <group> --name <app> --src-path {} --type zip",
            z.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cargo::command().debug_assert();
        Azfn::augment_args(clap::Command::new("cargo-azfn")).debug_assert();
    }
}
