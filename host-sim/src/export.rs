//! Exports of a meta-trained policy: the core's bundle (what the device flashes), a
//! `.safetensors` file (named tensors for Python), and a JSON summary.
//!
//! Tensors follow the core's layer layout: `hidden1.weight` `[h1, obs]`, `hidden1.bias`
//! `[h1]`, `hidden2.*` (when present), `head.weight` `[act, in]`, `head.bias` `[act]`, and
//! for a Gaussian policy `log_std` `[act]`; weights are `[out, in]` row-major (PyTorch's
//! `nn.Linear` convention), hidden layers use tanh. The safetensors metadata carries the
//! shape, recipe and provenance as strings (JSON where structured). Every file is written
//! atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;
use sgmrl::adapt::Memory;
use sgmrl::bundle::{Bundle, BundleSpec};
use sgmrl::policy::{Distribution, PolicyShape};
use sgmrl::recipe::Recipe;

use crate::config::{Config, shape_name};
use crate::model::Model;

/// Format tag of the safetensors metadata.
pub const SAFETENSORS_FORMAT: &str = "sgmrl-policy/1";
/// Format tag of the summary.
pub const SUMMARY_FORMAT: &str = "sgmrl-summary/1";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The core's writer refused the bundle.
    #[error("cannot encode bundle: {0}")]
    Bundle(sgmrl::bundle::BundleError),
    /// The parameter vector does not fit the shape.
    #[error("policy {} needs {expected} parameters, got {got}", shape_name(shape))]
    ParamCount {
        /// The shape.
        shape: PolicyShape,
        /// Its parameter count.
        expected: usize,
        /// Parameters given.
        got: usize,
    },
    /// The safetensors writer failed.
    #[error("cannot encode safetensors: {0}")]
    Safetensors(String),
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] crate::atomic::WriteError),
}

impl From<sgmrl::bundle::BundleError> for ExportError {
    fn from(e: sgmrl::bundle::BundleError) -> Self {
        Self::Bundle(e)
    }
}

/// One named tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name (`hidden1.weight`, …).
    pub name: String,
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Splits a flat parameter vector into the named tensors of its layers.
pub fn tensors(shape: &PolicyShape, params: &[f32]) -> Result<Vec<Tensor>, ExportError> {
    let expected = shape.n_params();
    if params.len() != expected {
        return Err(ExportError::ParamCount {
            shape: *shape,
            expected,
            got: params.len(),
        });
    }
    let mut widths = vec![usize::from(shape.obs_dim)];
    widths.extend(
        shape
            .hidden
            .iter()
            .filter(|&&h| h > 0)
            .map(|&h| usize::from(h)),
    );
    widths.push(usize::from(shape.act_dim));
    let n_layers = widths.len() - 1;
    let mut out = Vec::new();
    let mut rest = params;
    let mut take = |name: String, dims: Vec<usize>| {
        let n: usize = dims.iter().product();
        let (head, tail) = rest.split_at(n);
        rest = tail;
        out.push(Tensor {
            name,
            dims,
            values: head.to_vec(),
        });
    };
    for (l, pair) in widths.windows(2).enumerate() {
        let (input, output) = (pair[0], pair[1]);
        let name = if l + 1 == n_layers {
            "head".to_string()
        } else {
            format!("hidden{}", l + 1)
        };
        take(format!("{name}.weight"), vec![output, input]);
        take(format!("{name}.bias"), vec![output]);
    }
    if shape.distribution == Distribution::Gaussian {
        take("log_std".into(), vec![usize::from(shape.act_dim)]);
    }
    Ok(out)
}

/// The recipe as JSON-friendly fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecipeJson {
    /// α.
    pub alpha: f32,
    /// ζ.
    pub steps: u16,
    /// `N`.
    pub episodes: u16,
    /// `H`.
    pub horizon: u16,
    /// γ.
    pub gamma: f32,
    /// `reward-to-go`, `time-baseline`, `batch-mean` or `gae`.
    pub advantage: &'static str,
    /// GAE λ; 0 (and unused) unless `gae`, as in the configuration's `recipe.gae_lambda`,
    /// so the summary never says `null` in one place and `0.0` in another.
    pub gae_lambda: f32,
    /// Advantage normalisation.
    pub normalize: bool,
    /// `per-episode` or `per-step`.
    pub loss: &'static str,
    /// Gaussian action scale.
    pub action_scale: f32,
    /// Gaussian action clip (`null`: none).
    pub action_clip: Option<f32>,
}

impl From<&Recipe> for RecipeJson {
    fn from(r: &Recipe) -> Self {
        Self {
            alpha: r.alpha,
            steps: r.steps,
            episodes: r.episodes,
            horizon: r.horizon,
            gamma: r.gamma,
            advantage: r.advantage.name(),
            gae_lambda: r.advantage.lambda().unwrap_or(0.0),
            normalize: r.normalize,
            loss: r.loss.name(),
            action_scale: r.action.scale,
            action_clip: r.action.clip,
        }
    }
}

/// The policy architecture as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShapeJson {
    /// `gaussian` or `softmax`.
    pub distribution: &'static str,
    /// Observation length.
    pub obs_dim: u16,
    /// Hidden widths (absent layers left out).
    pub hidden: Vec<u16>,
    /// Actions (softmax) or action dimensions (Gaussian).
    pub act_dim: u16,
    /// Parameter count `P`.
    pub n_params: usize,
    /// Readable form, `2→16→2 (Gaussian)`.
    pub name: String,
}

impl From<&PolicyShape> for ShapeJson {
    fn from(s: &PolicyShape) -> Self {
        Self {
            distribution: s.distribution.name(),
            obs_dim: s.obs_dim,
            hidden: s.hidden.iter().copied().filter(|&h| h > 0).collect(),
            act_dim: s.act_dim,
            n_params: s.n_params(),
            name: shape_name(s),
        }
    }
}

/// The device's RAM for the adapter, from `Recipe::memory`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryJson {
    /// Adapted-parameter copy (0 for ζ = 1).
    pub params_floats: usize,
    /// Gradient accumulator.
    pub grad_floats: usize,
    /// Episode or batch buffer.
    pub episode_floats: usize,
    /// The policy's hidden-layer activations and deltas.
    pub scratch_floats: usize,
    /// Total, bytes.
    pub total_bytes: usize,
    /// The `P` + one-episode yardstick, bytes.
    pub lower_bound_bytes: usize,
}

impl MemoryJson {
    /// The adapter memory of `shape` under `recipe`.
    pub fn new(shape: &PolicyShape, recipe: &Recipe) -> Self {
        let m = recipe.memory(shape);
        Self {
            params_floats: m.params_floats,
            grad_floats: m.grad_floats,
            episode_floats: m.episode_floats,
            scratch_floats: m.scratch_floats,
            total_bytes: m.total_bytes(),
            lower_bound_bytes: 4 * Memory::lower_bound_floats(shape, recipe.horizon),
        }
    }
}

/// The bundle file's identity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BundleJson {
    /// File name.
    pub file: String,
    /// Size, bytes.
    pub bytes: usize,
    /// Its stored CRC-32.
    pub crc32: String,
}

/// The JSON summary of an export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// [`SUMMARY_FORMAT`].
    pub format: &'static str,
    /// Task name.
    pub task: String,
    /// Bundle task id.
    pub task_id: u16,
    /// Training algorithm.
    pub trainer: &'static str,
    /// Seed of the training run.
    pub seed: u64,
    /// Meta-iterations done.
    pub meta_iterations: u64,
    /// Policy architecture.
    pub policy: ShapeJson,
    /// The adaptation recipe.
    pub recipe: RecipeJson,
    /// Device RAM for adaptation.
    pub device_memory: MemoryJson,
    /// The bundle.
    pub bundle: BundleJson,
    /// The safetensors file name.
    pub safetensors: String,
    /// The full training configuration, when known.
    pub config: Option<Config>,
    /// The honest held-out evaluation (`eval.json`), when run.
    pub eval: Option<serde_json::Value>,
}

/// The bundle of `model`.
pub fn bundle_bytes(model: &Model) -> Result<Vec<u8>, ExportError> {
    Ok(BundleSpec {
        shape: model.shape,
        recipe: model.recipe,
        task: model.env.task_id(),
        trainer: model.trainer,
        seed: model.seed,
        meta_iterations: u32::try_from(model.iterations).unwrap_or(u32::MAX),
        baseline: model.baseline.as_deref(),
        params: &model.params,
    }
    .to_bytes()?)
}

/// The safetensors file of `model`.
pub fn safetensors_bytes(model: &Model) -> Result<Vec<u8>, ExportError> {
    let ts = tensors(&model.shape, &model.params)?;
    let bytes: Vec<Vec<u8>> = ts
        .iter()
        .map(|t| t.values.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::new();
    for (t, b) in ts.iter().zip(&bytes) {
        let v = TensorView::new(Dtype::F32, t.dims.clone(), b)
            .map_err(|e| ExportError::Safetensors(e.to_string()))?;
        views.push((t.name.clone(), v));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), SAFETENSORS_FORMAT.to_string());
    meta.insert("shape".to_string(), to_json(&ShapeJson::from(&model.shape)));
    meta.insert(
        "recipe".to_string(),
        to_json(&RecipeJson::from(&model.recipe)),
    );
    meta.insert("task".to_string(), model.env.name().to_string());
    meta.insert("trainer".to_string(), model.trainer.name().to_string());
    meta.insert("seed".to_string(), model.seed.to_string());
    meta.insert("meta_iterations".to_string(), model.iterations.to_string());
    meta.insert(
        "layout".to_string(),
        "dense layers in order, weight [out, in] then bias [out]; tanh hidden layers, linear head; \
         Gaussian: log_std [act] last"
            .to_string(),
    );
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| ExportError::Safetensors(e.to_string()))?;
    canonical_header(&bytes)
}

/// `v` with every object's keys inserted in sorted order (sorted whether serde_json's map
/// is its default BTreeMap or the insertion-ordered one of its `preserve_order` feature).
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let entries: std::collections::BTreeMap<String, serde_json::Value> =
                m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(entries.into_iter().collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// Rewrites a safetensors file's JSON header with its keys sorted: the writer emits the
/// metadata map in hash order, which changes from run to run, and the same model must
/// give the same bytes. The header stays padded with spaces to a multiple of 8 bytes.
fn canonical_header(bytes: &[u8]) -> Result<Vec<u8>, ExportError> {
    let bad = || ExportError::Safetensors("malformed header from the writer".into());
    let n = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)?;
    let header = bytes.get(8..8 + n).ok_or_else(bad)?;
    let data = bytes.get(8 + n..).ok_or_else(bad)?;
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|_| bad())?;
    let mut text = serde_json::to_vec(&sorted(value)).map_err(|_| bad())?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    Ok(out)
}

/// Compact JSON of a value whose serialisation cannot fail (plain structs).
fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Paths written by [`export_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The bundle.
    pub bundle: PathBuf,
    /// The safetensors file.
    pub safetensors: PathBuf,
    /// The summary.
    pub summary: PathBuf,
}

/// Writes `bundle.sgml`, `policy.safetensors` and `summary.json` into `dir`; `eval` (an
/// [`crate::eval::EvalReport`] as JSON) is copied into the summary.
pub fn export_all(
    model: &Model,
    dir: &Path,
    eval: Option<serde_json::Value>,
) -> Result<Exported, ExportError> {
    let paths = Exported {
        bundle: dir.join("bundle.sgml"),
        safetensors: dir.join("policy.safetensors"),
        summary: dir.join("summary.json"),
    };
    let bundle = bundle_bytes(model)?;
    let crc = Bundle::parse(&bundle)?.checksum();
    crate::atomic::write(&paths.bundle, &bundle)?;
    crate::atomic::write(&paths.safetensors, &safetensors_bytes(model)?)?;
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let summary = Summary {
        format: SUMMARY_FORMAT,
        task: model.env.name().to_string(),
        task_id: model.env.task_id().0,
        trainer: model.trainer.name(),
        seed: model.seed,
        meta_iterations: model.iterations,
        policy: ShapeJson::from(&model.shape),
        recipe: RecipeJson::from(&model.recipe),
        device_memory: MemoryJson::new(&model.shape, &model.recipe),
        bundle: BundleJson {
            file: file_name(&paths.bundle),
            bytes: bundle.len(),
            crc32: format!("{crc:#010x}"),
        },
        safetensors: file_name(&paths.safetensors),
        config: model.config.clone(),
        eval,
    };
    let mut text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    text.push('\n');
    crate::atomic::write(&paths.summary, text.as_bytes())?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvName, Preset};
    use sgmrl::policy::ParamSource;
    use sgmrl::rng::Rng;

    fn model(preset: Preset, env: EnvName, hidden: Vec<u16>) -> Model {
        let mut c = preset.config();
        c.env = env;
        c.policy.hidden = hidden;
        let mut rng = Rng::new(9);
        let p = (0..c.shape().n_params()).map(|_| rng.normal()).collect();
        Model::from_config(&c, p, 42)
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgmrl-export-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn bundle_parses_and_round_trips() {
        let m = model(Preset::PaperTable1, EnvName::Nav2d, vec![100, 100]);
        let bytes = bundle_bytes(&m).unwrap();
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.shape(), m.shape);
        assert_eq!(b.recipe(), m.recipe);
        assert_eq!(b.task(), m.env.task_id());
        assert_eq!(b.trainer(), m.trainer);
        assert_eq!((b.seed(), b.meta_iterations()), (m.seed, 42));
        let params: Vec<f32> = ParamSource::<f32>::values(b.params()).collect();
        assert_eq!(params, m.params);
        // Loading the bytes back as a model and re-exporting gives the same bytes.
        let back = Model::from_bundle(&bytes, Path::new("b"), None).unwrap();
        assert_eq!(bundle_bytes(&back).unwrap(), bytes);
    }

    /// The paper's Table 2 policies (17→100→100→6 HalfCheetah, 8→100→100→2 Swimmer) are
    /// valid bundles: the core parses them and states their adapter RAM (bytes; the
    /// numbers docs/locomotion.md quotes). The batch of 20 episodes × 200 steps the GAE rule
    /// buffers dominates; ζ > 1 adds a second parameter copy.
    #[test]
    fn locomotion_bundles_parse_and_state_their_device_ram() {
        let mut seen = Vec::new();
        for (env, steps) in [
            (EnvName::HalfCheetahDir, 1),
            (EnvName::HalfCheetahVel, 3),
            (EnvName::SwimmerVel, 1),
            (EnvName::SwimmerVel, 3),
        ] {
            let mut m = model(Preset::PaperTable2, env, vec![100, 100]);
            m.recipe.steps = steps;
            let bytes = bundle_bytes(&m).unwrap();
            let b = Bundle::parse(&bytes).unwrap();
            assert_eq!(b.task(), env.task_id());
            assert_eq!(EnvName::from_task_id(b.task()), Some(env));
            assert_eq!(b.shape(), m.shape);
            let ram = b.recipe().memory(&b.shape()).total_bytes();
            seen.push((env.name(), steps, m.shape.n_params(), bytes.len(), ram));
        }
        assert_eq!(
            seen,
            [
                ("half-cheetah-dir", 1, 12_512, 50_128, 441_960),
                ("half-cheetah-vel", 3, 12_512, 50_128, 492_008),
                ("swimmer-vel", 1, 11_204, 44_896, 224_336),
                ("swimmer-vel", 3, 11_204, 44_896, 269_152),
            ]
        );
    }

    #[test]
    fn tensors_follow_the_core_layout() {
        let m = model(Preset::Embedded, EnvName::Nav2d, vec![16]);
        let ts = tensors(&m.shape, &m.params).unwrap();
        let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hidden1.weight",
                "hidden1.bias",
                "head.weight",
                "head.bias",
                "log_std"
            ]
        );
        assert_eq!(ts[0].dims, [16, 2]);
        assert_eq!(ts[2].dims, [2, 16]);
        let flat: Vec<f32> = ts.iter().flat_map(|t| t.values.clone()).collect();
        assert_eq!(flat, m.params);
        // Row o of hidden1.weight holds the weights into unit o: params[o*2 + i].
        assert_eq!(ts[0].values[2 * 5 + 1], m.params[11]);
        let d = model(Preset::Embedded, EnvName::Nav2dDiscrete, vec![]);
        let ts = tensors(&d.shape, &d.params).unwrap();
        let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["head.weight", "head.bias"]);
        assert!(tensors(&d.shape, &d.params[1..]).is_err());
    }

    #[test]
    fn safetensors_reads_back_in_rust() {
        let m = model(Preset::Embedded, EnvName::Nav2d, vec![16, 16]);
        let bytes = safetensors_bytes(&m).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for t in tensors(&m.shape, &m.params).unwrap() {
            let v = st.tensor(&t.name).unwrap();
            assert_eq!(v.shape(), t.dims.as_slice());
            let want: Vec<u8> = t.values.iter().flat_map(|x| x.to_le_bytes()).collect();
            assert_eq!(v.data(), want.as_slice());
        }
        // The same model always gives the same bytes (metadata keys sorted).
        assert_eq!(safetensors_bytes(&m).unwrap(), bytes);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["format"], SAFETENSORS_FORMAT);
        assert!(meta["recipe"].contains("\"steps\":1"));
    }

    #[test]
    fn export_all_writes_three_files() {
        let d = scratch("all");
        let m = model(Preset::Embedded, EnvName::Nav2d, vec![16]);
        let p = export_all(&m, &d, None).unwrap();
        let b = std::fs::read(&p.bundle).unwrap();
        assert_eq!(b, bundle_bytes(&m).unwrap());
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p.summary).unwrap()).unwrap();
        assert_eq!(s["format"], SUMMARY_FORMAT);
        assert_eq!(s["policy"]["n_params"], m.shape.n_params());
        assert_eq!(s["bundle"]["bytes"], b.len());
        assert_eq!(s["recipe"]["advantage"], "reward-to-go");
        // One value for λ wherever the summary states it.
        assert_eq!(s["recipe"]["gae_lambda"], 0.0);
        assert_eq!(
            s["recipe"]["gae_lambda"],
            s["config"]["recipe"]["gae_lambda"]
        );
        assert!(s["eval"].is_null());
        let _ = std::fs::remove_dir_all(&d);
    }

    /// True when running in CI (`CI` set and not `false`, as CI services set it).
    fn in_ci() -> bool {
        std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
    }

    /// What to do when the Python round trip cannot run: skip with the reason on a
    /// developer's machine, fail in CI, where a skip would report a check that never ran
    /// as passed.
    fn skip_python(reason: &str, ci: bool) {
        assert!(
            !ci,
            "python_reads_the_same_numbers cannot run in CI: {reason}"
        );
        eprintln!("skipped python_reads_the_same_numbers: {reason}");
    }

    #[test]
    fn a_python_skip_fails_in_ci_only() {
        assert!(std::panic::catch_unwind(|| skip_python("test", true)).is_err());
        skip_python("test", false);
    }

    /// Python's `safetensors.numpy` reads the same numbers (and the bundle's documented
    /// `struct` reader the same parameters). Skipped, with the reason printed, when
    /// Python or the package is missing (`pip install safetensors numpy`); in CI a
    /// missing Python fails the test instead.
    #[test]
    fn python_reads_the_same_numbers() {
        let probe = std::process::Command::new("python3")
            .args(["-c", "import safetensors.numpy, numpy"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                skip_python(
                    &format!(
                        "`import safetensors.numpy` failed ({}); run `pip install safetensors numpy`",
                        String::from_utf8_lossy(&o.stderr)
                            .trim()
                            .lines()
                            .last()
                            .unwrap_or("")
                    ),
                    in_ci(),
                );
                return;
            }
            Err(e) => {
                skip_python(&format!("no python3 ({e})"), in_ci());
                return;
            }
        }
        let d = scratch("py");
        let m = model(Preset::PaperTable1, EnvName::Nav2d, vec![100, 100]);
        let p = export_all(&m, &d, None).unwrap();
        let script = r#"
import json, struct, sys, zlib
from safetensors import safe_open
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
with safe_open(sys.argv[1], "np") as f:
    meta = f.metadata()
data = open(sys.argv[2], "rb").read()
h = struct.unpack_from("<4sHHBBHHHHHfHHHHfBBHfffHBBQIII", data)
bl, pc = h[-2], h[-1]
end = 76 + 4 * (bl + pc)
assert zlib.crc32(data[:end]) == struct.unpack_from("<I", data, end)[0]
print(json.dumps({
    "hex": {k: v.astype("<f4").tobytes().hex() for k, v in t.items()},
    "dims": {k: list(v.shape) for k, v in t.items()},
    "meta": meta,
    "bundle_params": data[76 + 4 * bl:end].hex(),
}))
"#;
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&p.safetensors)
            .arg(&p.bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let hex = |xs: &[f32]| -> String {
            xs.iter()
                .flat_map(|x| x.to_le_bytes())
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let ts = tensors(&m.shape, &m.params).unwrap();
        assert_eq!(v["hex"].as_object().unwrap().len(), ts.len());
        for t in &ts {
            assert_eq!(v["hex"][&t.name], hex(&t.values), "{}", t.name);
            assert_eq!(v["dims"][&t.name], serde_json::json!(t.dims));
        }
        assert_eq!(v["bundle_params"], hex(&m.params));
        assert_eq!(v["meta"]["task"], "nav2d");
        let _ = std::fs::remove_dir_all(&d);
    }
}
