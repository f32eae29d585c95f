//! What `pogo` runs: the command line parsed (src/cli), logging set up, then the subcommand's
//! code — the executor phases, `pogo exec`, the set-up commands, the dashboard.

use crate::cli::{self, Cli};
use crate::config;
use crate::executor;
use std::collections::HashMap;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let cli = cli::parse_cli_or_dashboard();
    crate::logging::init();
    let env = crate::setup::env_map();
    let code = dispatch(cli, env);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn dispatch(cli: Cli, env: HashMap<String, String>) -> i32 {
    let flag = cli.config.as_deref();
    match cli.command {
        cli::Command::Config => executor::config_main(flag, &env),
        cli::Command::Prepare => executor::prepare_main(flag, &env),
        cli::Command::Run { script, stage } => executor::run_main(flag, &env, &script, &stage),
        cli::Command::Cleanup => executor::cleanup_main(flag, &env),
        cli::Command::RemoveJob { order } => executor::removal::remove_main(&order),
        cli::Command::Gc(args) => executor::gc::gc_main(
            flag,
            &env,
            executor::gc::GcRequest {
                dry_run: args.dry_run,
                older_than: args.older_than,
                runner: args.runner,
                quiet: args.quiet,
            },
        ),
        cli::Command::Exec(args) => crate::localrun::exec_main(args, flag),
        cli::Command::Print => match config::load(flag, &env) {
            Ok(c) => match config::to_yaml(&c) {
                Ok(y) => {
                    if let Some(src) = &c.source {
                        println!("# from {}", src.display());
                    } else {
                        println!("# no config file found: built-in defaults and POGO_* variables");
                    }
                    print!("{y}");
                    0
                }
                Err(e) => {
                    eprintln!("pogo: {}", e.message);
                    1
                }
            },
            Err(e) => {
                eprintln!("pogo: {e}");
                1
            }
        },
        cli::Command::Version => {
            println!("pogo {}", env!("CARGO_PKG_VERSION"));
            0
        }
        cli::Command::Register(args) => crate::setup::register::register_main(args, flag),
        cli::Command::Unregister(args) => crate::setup::register::unregister_main(args),
        cli::Command::Install(args) => crate::setup::install::install_main(args),
        cli::Command::Doctor(args) => crate::setup::doctor::doctor_main(args, flag),
        cli::Command::Completions { shell } => {
            cli::completions(shell, &mut std::io::stdout());
            0
        }
        cli::Command::Man { dir } => match cli::man(dir.as_deref(), &mut std::io::stdout()) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                0
            }
            Err(e) => {
                eprintln!("pogo man: {e}");
                1
            }
        },
        cli::Command::Tui(args) => crate::tui::main(flag, &args, env),
    }
}
