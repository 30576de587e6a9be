//! `pitcher demo`: a hot directory on the embedded broker, set up and
//! running in one command, printing files as they arrive.
//!
//! It writes a watch and a sender config (sr3's own keywords) under the demo
//! directory, starts them under a supervisor, drops a few sample files in
//! the hot directory (flat, nested, and written under a `.tmp` name then
//! renamed), and prints each file that arrives in the destination. Then it
//! keeps watching (drop your own files in) until Ctrl-C, or, with `--once`,
//! stops when the samples have arrived.

use crate::state::Paths;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Options of `pitcher demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where the demo lives (configs, state, hot and destination dirs).
    #[arg(long, default_value = "pitcher-demo")]
    dir: PathBuf,
    /// Stop once the sample files have arrived, instead of running on.
    #[arg(long)]
    once: bool,
    /// Sender instances.
    #[arg(long, default_value_t = 2)]
    instances: u32,
}

fn write_configs(cfg_dir: &Path, hot: &Path, dest: &Path, instances: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(cfg_dir.join("watch"))?;
    std::fs::create_dir_all(cfg_dir.join("sender"))?;
    std::fs::write(
        cfg_dir.join("watch/hot.conf"),
        format!(
            "# Announce every file that lands in the hot directory.\n\
             post_broker local:\npost_exchange xs_demo_hot\n\n\
             post_baseUrl file:{hot}\npath {hot}\n\nnodupe_ttl on\n\n\
             # exclude working files (that end in .tmp)\nreject .*\\.tmp$\naccept .*\n",
            hot = hot.display()
        ),
    )?;
    std::fs::write(
        cfg_dir.join("sender/hot.conf"),
        format!(
            "# Copy each announced file into the destination.\n\
             broker local:\nexchange xs_demo_hot\n\nsendTo file:\ndirectory {dest}\n\n\
             instances {instances}\ninflight .tmp\nnodupe_ttl on\n\n\
             reject .*\\.tmp$\naccept .*\n",
            dest = dest.display()
        ),
    )
}

fn drop_samples(hot: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(hot.join("reports/2026"))?;
    std::fs::write(hot.join("hello.txt"), b"hello from the hot directory\n")?;
    std::fs::write(
        hot.join("reports/2026/summary.csv"),
        b"site,files\nloli,3\n",
    )?;
    // Written under a rejected name, then renamed: sr3 loses these; pitcher does not.
    std::fs::write(hot.join("reports/data.bin.tmp"), vec![7u8; 100_000])?;
    std::fs::rename(
        hot.join("reports/data.bin.tmp"),
        hot.join("reports/data.bin"),
    )?;
    Ok(3)
}

/// Regular files under `dir` that are not inflight (`.tmp`), with sizes.
fn arrived(dir: &Path) -> HashMap<PathBuf, u64> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().ends_with(".tmp"))
        .filter_map(|e| Some((e.path().to_path_buf(), e.metadata().ok()?.len())))
        .collect()
}

/// `pitcher demo`.
pub fn run(_paths: &Paths, args: DemoArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)?;
    let root = args.dir.canonicalize()?;
    let (hot, dest) = (root.join("hot"), root.join("dest"));
    std::fs::create_dir_all(&hot)?;
    std::fs::create_dir_all(&dest)?;
    let paths = Paths::resolve(Some(root.join("config")), Some(root.join("state")));
    write_configs(&paths.config_dir, &hot, &dest, args.instances)?;
    println!("demo in {}:", root.display());
    println!(
        "  hot directory: {}\n  destination:   {}",
        hot.display(),
        dest.display()
    );
    println!(
        "  configs:       {} (watch/hot.conf, sender/hot.conf)",
        paths.config_dir.display()
    );
    println!("  logs:          {}\n", paths.log_dir().display());
    super::start::run(&paths, &[])?;
    let t0 = Instant::now();
    let mut known = arrived(&dest);
    let samples = drop_samples(&hot)?;
    println!("\ndropped {samples} sample files; arrivals:");
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = ctrlc_channel(tx);
    let mut got = 0;
    loop {
        for (path, size) in arrived(&dest) {
            if known.insert(path.clone(), size) != Some(size) {
                got += 1;
                let rel = path.strip_prefix(&dest).unwrap_or(&path);
                println!(
                    "  arrived: {} ({size} bytes) at +{:.2}s",
                    rel.display(),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        if args.once && got >= samples {
            break;
        }
        if args.once && t0.elapsed() > Duration::from_secs(60) {
            super::stop::run(&paths, &[])?;
            anyhow::bail!(
                "only {got} of {samples} sample files arrived within 60 s; see {}",
                paths.log_dir().display()
            );
        }
        if got == samples && !args.once {
            got += 1;
            println!(
                "\nall samples arrived. Drop your own files into {} — Ctrl-C to stop.",
                hot.display()
            );
        }
        if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
            break;
        }
    }
    println!();
    // Instances write their counters every second.
    std::thread::sleep(Duration::from_millis(1200));
    super::status::run(&paths, &[], false)?;
    super::stop::run(&paths, &[])?;
    println!("demo stopped.");
    Ok(ExitCode::SUCCESS)
}

/// Sends on `tx` when SIGINT or SIGTERM arrives.
fn ctrlc_channel(tx: std::sync::mpsc::Sender<()>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut a), Ok(mut b)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! { _ = a.recv() => {}, _ = b.recv() => {} }
            let _ = tx.send(());
        })
    });
    Ok(())
}
