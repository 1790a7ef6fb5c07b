//! `azfn-sim`: runs seeds of the durable engine's simulation and reports each failure with the
//! command that replays it. `scripts/simulate` runs it.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// Runs the deterministic simulation of azfn's durable engine over many seeds.
#[derive(Debug, Parser)]
#[command(name = "azfn-sim", version)]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Run this one seed only, printing its trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Simulated workers per run (1 to 16); a list (`1,2,4,8`) takes each in turn, seed by seed.
    #[arg(long, default_value = "4", value_delimiter = ',')]
    workers: Vec<usize>,
    /// Scenarios per run.
    #[arg(long, default_value_t = 6)]
    scenarios: usize,
    /// The widest fan-out a run may draw.
    #[arg(long, default_value_t = 40)]
    max_fan_out: i64,
    /// Runs without faults or crashes.
    #[arg(long)]
    no_faults: bool,
    /// Print the trace of every failing seed (always done for --seed).
    #[arg(long)]
    trace: bool,
    /// Draw only this scenario (e.g. `quiet-sender`), for a run that walks one shape many times.
    #[arg(long)]
    only: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first_seed..args.first_seed + args.seeds).collect(),
    };
    let began = Instant::now();
    let mut failed = Vec::new();
    let (mut calls, mut faults, mut crashes) = (0, 0, 0);
    if let Some(w) = args.workers.iter().find(|w| !(1..=16).contains(*w)) {
        eprintln!("--workers {w}: a run has 1 to 16 workers");
        return ExitCode::from(2);
    }
    let only = match args.only.as_deref() {
        None => None,
        Some(name) => match azfn_sim::workload::SCENARIOS.iter().find(|s| **s == name) {
            Some(s) => Some(*s),
            None => {
                eprintln!("--only {name}: not a scenario; the scenarios are {:?}", azfn_sim::workload::SCENARIOS);
                return ExitCode::from(2);
            }
        },
    };
    for (i, seed) in seeds.iter().enumerate() {
        let workers = args.workers[i % args.workers.len()];
        let config = azfn_sim::Config {
            seed: *seed,
            workers,
            scenarios: args.scenarios,
            max_fan_out: args.max_fan_out,
            faults: !args.no_faults,
            only,
            ..azfn_sim::Config::default()
        };
        let report = azfn_sim::run(&config);
        calls += report.trace.calls;
        faults += report.trace.faults;
        crashes += report.crashes;
        if args.seed.is_some() {
            println!("{}", report.trace_text());
        }
        if !report.failures.is_empty() || args.seed.is_some() {
            print!("{}", report.describe());
        }
        if !report.failures.is_empty() {
            if args.trace && args.seed.is_none() {
                println!("{}", report.trace_text());
            }
            println!(
                "  replay: scripts/simulate --seed {seed} --workers {workers} --scenarios {} --max-fan-out {}{}{}",
                args.scenarios,
                args.max_fan_out,
                if args.no_faults { " --no-faults" } else { "" },
                only.map(|o| format!(" --only {o}")).unwrap_or_default()
            );
            failed.push(*seed);
        }
    }
    println!(
        "{} seeds on {:?} workers: {} passed, {} failed ({calls} storage calls, {faults} faults, {crashes} crashes) in {:.1} s",
        seeds.len(),
        args.workers,
        seeds.len() - failed.len(),
        failed.len(),
        began.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}
