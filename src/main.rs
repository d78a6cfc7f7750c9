use clap::Parser;
use integration_response_operator::{cli::Args, runtime, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format);
    runtime::run(args).await
}
