//! The `moat` binary: `run`, `check` and `dev`. `anyhow` lives only here, at the edge.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use moat::config::{self, LogFormat};
use moat::server::{shutdown_signal, Server};

#[derive(Parser)]
#[command(name = "moat", version, about = "Security sidecar proxy for MQTT brokers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a config file.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Log format (overrides `log_format` in the config).
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Validate a config file and every file it references; exit 2 on any error.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Throwaway dev setup: PKI, embedded broker, TLS listener, admin API.
    Dev {
        /// Where to write the dev PKI and config (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use this broker instead of the embedded one.
        #[arg(long)]
        upstream: Option<String>,
        #[arg(long, default_value = "127.0.0.1:8883")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
    },
    /// Add or replace a user in a YAML password file (argon2id). The password is read from the
    /// terminal without echo, or as one line from standard input.
    Passwd {
        file: PathBuf,
        user: String,
        /// Also write SCRAM-SHA-256 and SCRAM-SHA-512 credentials (MQTT 5 enhanced auth).
        #[arg(long)]
        scram: bool,
        /// PBKDF2 iterations of the SCRAM credentials (at least 4096).
        #[arg(long, default_value_t = 4096, requires = "scram")]
        scram_iterations: u32,
    },
    /// Operate a running moat through its admin API (bans, clients, reload, status).
    Ctl(moat::commands::ctl::CtlArgs),
    /// Work with ACL policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportFormat {
    Emqx,
    Mosquitto,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Convert an EMQX acl.conf or a Mosquitto acl_file into a moat ACL file (printed).
    Import {
        #[arg(long)]
        from: ImportFormat,
        file: PathBuf,
    },
    /// Show the ACL decision for one client and one topic, and the rule that made it.
    Explain {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, default_value = "")]
        clientid: String,
        #[arg(long)]
        cert_cn: Option<String>,
        #[arg(long)]
        peer: Option<std::net::IpAddr>,
        #[arg(long)]
        group: Vec<String>,
        /// NAME=VALUE, repeatable.
        #[arg(long)]
        attr: Vec<String>,
        #[arg(long)]
        superuser: bool,
        #[arg(long, conflicts_with = "subscribe", required_unless_present = "subscribe")]
        publish: Option<String>,
        #[arg(long)]
        subscribe: Option<String>,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long)]
        retain: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => return check(&config),
        Command::Run { config, log_format } => run(&config, log_format),
        Command::Dev { dir, upstream, listen, admin } => dev(dir, upstream, listen, admin),
        Command::Passwd { file, user, scram, scram_iterations } => {
            passwd(&file, &user, scram.then_some(scram_iterations))
        }
        Command::Policy { command } => return policy(command),
        Command::Ctl(args) => return ctl(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ctl(args: &moat::commands::ctl::CtlArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(moat::commands::ctl::run(args)).map_err(anyhow::Error::from));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("moat ctl: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match config::load(path).and_then(|c| moat::transport::check_tls(&c)) {
        Ok(()) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            for issue in &e.issues {
                eprintln!("{issue}");
            }
            ExitCode::from(2)
        }
    }
}

fn passwd(file: &Path, user: &str, scram_iterations: Option<u32>) -> anyhow::Result<()> {
    let password = moat::commands::passwd::read_password()?;
    moat::commands::passwd::set_password_with_scram(file, user, &password, scram_iterations)?;
    let scram = if scram_iterations.is_some() { ", SCRAM-SHA-256, SCRAM-SHA-512" } else { "" };
    eprintln!("{}: password for `{user}` set (argon2id{scram})", file.display());
    Ok(())
}

fn policy(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Import { from, file } => {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("moat: cannot read {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let converted = match from {
                ImportFormat::Emqx => moat::policy::acl::import_emqx(&text),
                ImportFormat::Mosquitto => moat::policy::acl::import_mosquitto(&text),
            };
            match converted {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    ExitCode::from(2)
                }
            }
        }
        PolicyCommand::Explain {
            config,
            username,
            clientid,
            cert_cn,
            peer,
            group,
            attr,
            superuser,
            publish,
            subscribe,
            qos,
            retain,
        } => {
            use moat::commands::explain::{explain, Question, Who};
            let cfg = match config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let Some(rules) = cfg.acl else {
                eprintln!("{}: no `authorization.acl` configured: every action is allowed", config.display());
                return ExitCode::from(2);
            };
            let mut attributes = std::collections::BTreeMap::new();
            for a in attr {
                match a.split_once('=') {
                    Some((k, v)) => {
                        attributes.insert(k.to_string(), v.to_string());
                    }
                    None => {
                        eprintln!("moat: --attr expects NAME=VALUE, got `{a}`");
                        return ExitCode::from(2);
                    }
                }
            }
            let who =
                Who { username, client_id: clientid, cert_cn, peer, groups: group, attributes, superuser };
            let question = match (&publish, &subscribe) {
                (Some(topic), _) => Question::Publish { topic, qos, retain },
                (None, Some(filter)) => Question::Subscribe { filter, qos },
                (None, None) => return ExitCode::from(2),
            };
            print!("{}", explain(&rules, who, question));
            ExitCode::SUCCESS
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")
}

fn run(path: &Path, log_format: Option<LogFormatArg>) -> anyhow::Result<()> {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            anyhow::bail!("invalid configuration");
        }
    };
    let format = match log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.log_format,
    };
    moat::logging::init(format, config.audit.as_ref())?;
    runtime()?.block_on(async {
        let server = Server::bind(config).await?;
        server.serve(shutdown_signal()).await;
        Ok(())
    })
}

fn dev(
    dir: Option<PathBuf>,
    upstream: Option<String>,
    listen: SocketAddr,
    admin: SocketAddr,
) -> anyhow::Result<()> {
    moat::logging::init(LogFormat::Text, None)?;
    // Keep the temporary directory alive for the whole run; it is removed on exit.
    let (dir, _temp) = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
            (d, None)
        }
        None => {
            let t =
                tempfile::Builder::new().prefix("moat-dev-").tempdir().context("cannot create a temp dir")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    moat::dev::write_dev_pki(&dir)?;
    moat::dev::write_dev_admin_token(&dir).context("cannot write the dev admin token")?;
    let upstream = match upstream {
        Some(u) => u,
        None => moat::dev::start_embedded_broker()?.to_string(),
    };
    let acl_path = dir.join("acl.yaml");
    std::fs::write(&acl_path, moat::dev::DEV_ACL)
        .with_context(|| format!("cannot write {}", acl_path.display()))?;
    let config_path = dir.join("moat.yaml");
    std::fs::write(&config_path, moat::dev::dev_config_yaml(listen, admin, &upstream))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => anyhow::bail!("generated config is invalid:\n{e}"),
    };
    runtime()?.block_on(async {
        wait_for_upstream(&upstream).await;
        let server = Server::bind(config).await?;
        let listen = server.listener_addrs().first().copied().unwrap_or(listen);
        println!("moat dev: PKI and config in {}", dir.display());
        println!("moat dev: MQTT over TLS on {listen}, admin API on http://{admin}, upstream {upstream}");
        println!();
        print!("{}", moat::dev::client_commands(&dir, listen));
        print!("{}", moat::dev::ctl_commands(&dir, admin));
        println!();
        println!("moat dev ready (Ctrl-C to stop)");
        server.serve(shutdown_signal()).await;
        anyhow::Ok(())
    })
}

/// The embedded broker starts on its own threads: wait (bounded) until it accepts.
async fn wait_for_upstream(addr: &str) {
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
