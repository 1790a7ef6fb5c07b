//! `cargo-azfn`: the azfn developer tool, run as `cargo azfn <command>`.

fn main() -> std::process::ExitCode {
    cargo_azfn::cli::main()
}
