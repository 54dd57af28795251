//! `tessera`: one binary for serving and administration.

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
