//! `violet-shim`: see the library's documentation and `violet-shim --help`.

use clap::Parser;
use std::process::ExitCode;
use violet_shim::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    violet_shim::init_logging(cli.log.as_deref());
    match violet_shim::launch(cli, violet_shim::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "violet-shim failed");
            ExitCode::FAILURE
        }
    }
}
