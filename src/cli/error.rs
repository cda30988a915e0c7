//! The CLI's one error type and its exit codes: every subcommand returns `Result<(), CliError>` and
//! [`report`] turns the error into a message on stderr and the process exit code, so every command exits with
//! a code from the same documented table (README, `gridtwin --help`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success, including a reader that closed stdout or stderr early (`gridtwin ... \| head`) |
//! | 1 | the work failed: a run or solve failed, an output could not be written, a check disagreed |
//! | 2 | bad input: a command-line mistake, or a scenario, plan, model or network file with an error |
//!
//! Anything else (101 is Rust's panic code) is a bug. A new subcommand maps its failures with
//! [`CliError::input`] (located file errors), [`CliError::usage`] (argument mistakes) and
//! [`CliError::failed`] (everything else); `String` errors convert to `failed`.

use crate::scenario::InputError;
use std::io::Write;

/// Success.
pub const EXIT_OK: i32 = 0;
/// The work itself failed (simulation, solver, I/O while writing results).
pub const EXIT_FAILED: i32 = 1;
/// Bad input: command line or input files.
pub const EXIT_BAD_INPUT: i32 = 2;

/// The exit-code table printed under `gridtwin --help` (and kept equal to the README's by a test).
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  success (also when a reader closes stdout or stderr early, e.g. `| head`)
  1  the work failed (a run or solve failed, an output could not be written)
  2  bad input (command line, or a scenario, plan, model or network file)";

/// An error for the user; [`CliError::exit_code`] is its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad input located in its file(s); later errors of the same input ride along as `related`.
    Input(Box<InputError>),
    /// A command-line mistake (bad option value, an option the command does not take, an unusable `--out`).
    Usage(String),
    /// The work failed (I/O, a failed run or solve, a disagreeing check).
    Failed(String),
    /// stdout or stderr was closed by its reader: a quiet, normal end.
    ClosedPipe,
}

impl CliError {
    /// A located input error.
    pub fn input(e: InputError) -> Self {
        CliError::Input(Box::new(e))
    }
    /// A command-line mistake (exit 2).
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }
    /// A failure of the work itself (exit 1).
    pub fn failed(msg: impl Into<String>) -> Self {
        CliError::Failed(msg.into())
    }
    /// Maps an I/O error on stdout: a closed pipe ends quietly, anything else fails.
    pub fn stdout(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::ClosedPipe
        } else {
            CliError::Failed(format!("stdout: {e}"))
        }
    }
    /// The process exit code of this error (see the module docs for the table).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) | CliError::Usage(_) => EXIT_BAD_INPUT,
            CliError::Failed(_) => EXIT_FAILED,
            CliError::ClosedPipe => EXIT_OK,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(e) => {
                write!(f, "{e}")?;
                for r in &e.related {
                    write!(f, "\n{r}")?;
                }
                Ok(())
            }
            CliError::Usage(e) | CliError::Failed(e) => write!(f, "{e}"),
            CliError::ClosedPipe => write!(f, "output closed by its reader"),
        }
    }
}

impl From<InputError> for CliError {
    fn from(e: InputError) -> Self {
        CliError::input(e)
    }
}
impl From<String> for CliError {
    fn from(e: String) -> Self {
        CliError::Failed(e)
    }
}
impl From<&str> for CliError {
    fn from(e: &str) -> Self {
        CliError::Failed(e.to_string())
    }
}

/// Prints `result`'s error (if any) on stderr and returns the exit code. Writing to a closed stderr is
/// ignored: the code still tells what happened.
pub fn report(result: Result<(), CliError>) -> i32 {
    let Err(e) = result else { return EXIT_OK };
    let code = e.exit_code();
    let mut err = std::io::stderr().lock();
    match e {
        CliError::Input(x) => {
            let n = x.count();
            let _ = writeln!(err, "{:?}", miette::Report::new(*x));
            if n > 1 {
                let _ = writeln!(err, "{n} errors");
            }
        }
        CliError::Usage(m) => {
            let _ = writeln!(err, "error: {m}\n\nFor more information, try '--help'.");
        }
        CliError::Failed(m) => {
            let _ = writeln!(err, "error: {m}");
        }
        CliError::ClosedPipe => {}
    }
    code
}

/// Writes `text` to stdout; a reader that closed the pipe ends the command quietly ([`CliError::ClosedPipe`]).
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|_| out.flush()).map_err(CliError::stdout)
}

/// `print` with a newline.
pub fn println(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush())
        .map_err(CliError::stdout)
}

/// Makes a panic caused by writing to a closed stdout or stderr (a `println!` somewhere when the reader of
/// `gridtwin ... | head` has gone) end the process quietly with code 0, as a closed pipe should; every other
/// panic keeps Rust's report and code 101.
pub fn install_closed_pipe_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(EXIT_OK);
        }
        default(info);
    }));
}
