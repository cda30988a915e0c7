//! gridtwin command line (minimal: the `grid` commands).
use clap::Parser;

#[derive(Parser)]
#[command(name = "gridtwin", version, about = "Deterministic simulator and digital twin of smart LV grids")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Power flow and short circuits of a network file.
    Grid(gridtwin::cli::grid::GridArgs),
}

fn main() {
    let cli = Cli::parse();
    let res = match &cli.command {
        Command::Grid(a) => gridtwin::cli::grid::run(a),
    };
    if let Err(e) = res {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
