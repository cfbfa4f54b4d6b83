//! The `embodied-r` binary: parses arguments, sets up logging, runs a subcommand.

#![allow(clippy::print_stderr)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = embodied_r_launch::Cli::parse_from(embodied_r_launch::without_ros_args(
        std::env::args_os(),
    ));
    embodied_r_launch::init_logging(cli.verbose);
    embodied_r_agent::episodes::surface_file_size_limits();
    match embodied_r_launch::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
