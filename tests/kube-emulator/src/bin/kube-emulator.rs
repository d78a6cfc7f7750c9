//! Runs the Kubernetes API emulator as a process (for the local quickstart and benchmarks).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Test-only Kubernetes API emulator")]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// CustomResourceDefinition YAML files to serve.
    #[arg(long = "crd", required = true)]
    crds: Vec<PathBuf>,
    /// Where to write a kubeconfig pointing at the emulator.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Extra namespaces to create at start ("default" always exists).
    #[arg(long = "namespace")]
    namespaces: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        return Err("the emulator only listens on loopback addresses".into());
    }
    let crds: Vec<&std::path::Path> = args.crds.iter().map(PathBuf::as_path).collect();
    let emulator = kube_emulator::Emulator::start_on(args.listen, &crds).await?;
    for namespace in &args.namespaces {
        emulator.create_namespace(namespace);
    }
    emulator.write_kubeconfig(&args.kubeconfig).map_err(|e| e.to_string())?;
    println!("kube-emulator listening on {} (kubeconfig: {})", emulator.url(), args.kubeconfig.display());
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}
