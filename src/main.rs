use std::process::ExitCode;

use clap::Parser;
use integration_response_operator::cli::{Args, Command};
use integration_response_operator::{export, runtime, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    match args.command {
        // Its output is the YAML on stdout: no log lines there.
        Some(Command::Export(export)) => Ok(export::run(export).await),
        None => {
            telemetry::init(args.log_format);
            runtime::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
