//! The `gridtwin` command. All behaviour lives in `gridtwin::cli`.
fn main() {
    std::process::exit(gridtwin::cli::main());
}
