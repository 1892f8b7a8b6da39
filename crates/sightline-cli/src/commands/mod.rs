//! One file per subcommand; this module only dispatches.

pub mod agent;
pub mod attach;
mod completions;
mod config;
mod doctor;
mod export;
mod hook;
mod import;
mod install;
pub mod live;
pub mod notify;
mod replay;
pub mod run;
mod serve;
pub mod sources;
mod status;
mod stop;
mod tail;

use crate::cli::{Cli, Command};

/// Runs the command; `Ok(code)` is the exit code for outcomes that are not errors.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    // Every client this process makes (hub commands, hook, OTLP export, plugins) trusts it.
    sightline_forward::http::set_ca_file(cli.cacert.clone());
    match cli.command {
        Command::Serve(args) => serve::run(args, cli.config.as_deref()),
        Command::Status(args) => status::run(&args),
        Command::Stop(args) => stop::run(&args),
        Command::Tail(args) => tail::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Hook(args) => hook::run(&args),
        Command::Install(args) => install::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Attach(args) => attach::run(&args),
        Command::Agent(args) => agent::run(&args),
        Command::Config(args) => config::run(&args, cli.config.as_deref()),
        Command::Doctor(args) => doctor::run(&args, cli.config.as_deref()),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
    }
}
