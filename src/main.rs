//! The `pod-hardener` binary: parses the command line and maps outcomes to exit codes.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use pod_hardener::cli::{self, Cli, Command};

/// mimalloc instead of the C library's allocator: per-request JSON work allocates heavily, and
/// the load harness measured glibc malloc and free at a third of the server's CPU (musl's
/// allocator, used by the static image, is slower still).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_line(&error));
            ExitCode::from(cli::EXIT_BAD_INPUT as u8)
        }
    }
}

/// The error and its causes on one line, each said once: our errors carry their source in their
/// own message (as kube's do), so anyhow's `{:#}` chain would repeat it.
fn error_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => {
            let input = args.input.read()?;
            let (out, all_allowed) = cli::check::run(&input, args.policy(), args.output)?;
            std::io::stdout().lock().write_all(out.as_bytes())?;
            let code = if all_allowed {
                cli::EXIT_OK
            } else {
                cli::EXIT_VIOLATIONS
            };
            Ok(ExitCode::from(code as u8))
        }
        Command::Harden(args) => {
            let input = args.input.read()?;
            let out = cli::harden::run(&input, &args.options()?)?;
            std::io::stderr().lock().write_all(out.stderr.as_bytes())?;
            std::io::stdout().lock().write_all(out.stdout.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Krm(args) => {
            let input = args.input.read()?;
            let out = cli::krm::run(&input, &args)?;
            std::io::stdout().lock().write_all(out.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(args) => {
            // Two workers: image lookups leave one with block_in_place while they wait.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let lookups = args.images.lookups()?;
            let outcome = runtime.block_on(cli::audit::run(&args, lookups.as_ref()))?;
            std::io::stdout()
                .lock()
                .write_all(outcome.stdout.as_bytes())?;
            std::io::stderr()
                .lock()
                .write_all(outcome.stderr.as_bytes())?;
            let code = if outcome.has_denials {
                cli::EXIT_VIOLATIONS
            } else {
                cli::EXIT_OK
            };
            Ok(ExitCode::from(code as u8))
        }
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(cli::serve::run(&args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(args) => {
            let (ca_bundle, written) = cli::certs::run(&args)?;
            eprintln!(
                "wrote {}, {} and {}",
                written.ca_cert.display(),
                written.cert.display(),
                written.key.display()
            );
            println!("{ca_bundle}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("{}", cli::version_line());
            Ok(ExitCode::SUCCESS)
        }
    }
}
