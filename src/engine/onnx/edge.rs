//! The edge format: the BM chain replaced by one `ai.bmn_edge.BoundaryMatching` node, the
//! dense mask gone, the BM parameters in `metadata_props`.

use super::index::GraphIndex;
use super::site::Site;
use super::split::{float_weights, inputs_of, int8_bm_symmetric};
use super::wire::f32_tensor;
use super::*;
use crate::config::Convention;
use crate::engine::info::{ModelInfo, WindowMode};

/// Rewrites a standard export (mask released) into the edge format: the BM chain becomes
/// one `BoundaryMatching` node, dead nodes and constants are dropped, and the parameters go
/// into `metadata_props`.
pub(crate) fn to_edge(
    mut proto: pb::ModelProto,
    site: &Site,
    k: usize,
    ratio: f64,
    meta: &[(String, String)],
) -> Result<pb::ModelProto, EngineError> {
    let graph = proto.graph.as_mut().ok_or_else(|| not_bmn("no graph"))?;
    let mut site = site.clone();
    let plain_weight = graph.initializer.iter().any(|t| t.name == site.weight && t.data_type == dtype::FLOAT);
    let keep_int8 = int8_bm_symmetric(&GraphIndex::new(graph, &[]), &site)?;
    if !keep_int8 && (site.qlinear.is_some() || !plain_weight) {
        // The edge node takes float weights (or int8 symmetric ones with their scales):
        // dequantize the BM layer's others.
        let (w, b) = float_weights(&GraphIndex::new(graph, &[]), &site)?;
        let (o, p, n) = (site.out_width, site.pem_width, site.num_sample);
        graph.initializer.push(f32_tensor("bmn_edge_bm_weight", &[o, p, n, 1, 1], &w));
        graph.initializer.push(f32_tensor("bmn_edge_bm_bias", &[o], &b));
        site.weight = "bmn_edge_bm_weight".into();
        site.bias = Some("bmn_edge_bm_bias".into());
        site.qlinear = None;
    }
    let site = &site;
    let first = *site.chain.iter().min().unwrap_or(&0);
    let chain: HashSet<usize> = site.chain.iter().copied().collect();
    let mut nodes: Vec<pb::NodeProto> = Vec::new();
    for (i, n) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        if i == first {
            let mut input = vec![site.y.clone(), site.weight.clone()];
            input.push(site.bias.clone().unwrap_or_default());
            if let Some((xs, ws, zp)) = &site.qlinear {
                input.extend([xs.clone(), ws.clone(), zp.clone()]);
            }
            while input.last().is_some_and(|s| s.is_empty()) {
                input.pop();
            }
            let int = |name: &str, v: usize| pb::AttributeProto {
                name: name.into(),
                r#type: 2,
                i: v as i64,
                ..Default::default()
            };
            nodes.push(pb::NodeProto {
                input,
                output: vec![site.h.clone()],
                name: "bmn_edge_boundary_matching".into(),
                op_type: EDGE_OP.into(),
                domain: EDGE_DOMAIN.into(),
                attribute: vec![
                    int("tscale", site.tscale),
                    int("dscale", site.dscale),
                    int("num_sample", site.num_sample),
                    int("num_sample_perbin", k),
                    pb::AttributeProto { name: "ratio".into(), r#type: 3, s: format!("{ratio:?}").into_bytes(), ..Default::default() },
                ],
                doc_string: "BMN boundary-matching layer: H = relu(bias + Conv3d_N(y · M)) with the sampling mask M of (T, D, N, K, r); inputs (y, weight[, bias[, x_scale, w_scale, w_zero_point]]): an int8 weight is QLinearConv's (int32 bias); see bmn-edge".into(),
            });
        }
        if !chain.contains(&i) {
            nodes.push(n);
        }
    }
    graph.node = nodes;
    // Dead-code elimination from the outputs.
    let live: HashSet<usize> = {
        let ix = GraphIndex::new(graph, &[]);
        let outs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        ix.ancestors(&outs, &[]).into_iter().collect()
    };
    graph.node = std::mem::take(&mut graph.node)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| live.contains(i))
        .map(|(_, n)| n)
        .collect();
    let all: Vec<usize> = (0..graph.node.len()).collect();
    let used = inputs_of(graph, &all);
    graph.initializer.retain(|t| used.contains(&t.name));
    let produced: HashSet<String> = graph.node.iter().flat_map(|n| n.output.iter().cloned()).collect();
    let inits: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    graph.input.retain(|i| i.name == site.input || inits.contains(&i.name));
    graph.value_info.retain(|v| produced.contains(&v.name) || inits.contains(&v.name));
    if !proto.opset_import.iter().any(|o| o.domain == EDGE_DOMAIN) {
        proto.opset_import.push(pb::OperatorSetIdProto { domain: EDGE_DOMAIN.into(), version: 1 });
    }
    proto.metadata_props.retain(|e| !e.key.starts_with(META_PREFIX));
    for (k, v) in meta {
        proto.metadata_props.push(pb::StringStringEntryProto { key: format!("{META_PREFIX}{k}"), value: v.clone() });
    }
    Ok(proto)
}

/// The edge format's metadata value for `key` (without the prefix).
pub(crate) fn metadata<'p>(proto: &'p pb::ModelProto, key: &str) -> Option<&'p str> {
    proto.metadata_props.iter().find(|e| e.key.strip_prefix(META_PREFIX) == Some(key)).map(|e| e.value.as_str())
}

/// The edge format version this build writes, and the only one it reads.
pub const FORMAT_VERSION: &str = "edge-v1";

/// The metadata an edge file carries (keys under [`META_PREFIX`]): the format version, the
/// BM parameters, the variant, the post-processing convention, the window mode and the
/// mask's non-zero count.
pub(crate) fn edge_props(info: &ModelInfo, window_mode: WindowMode) -> Vec<(String, String)> {
    let cfg = info.config;
    [
        ("format", FORMAT_VERSION.to_string()),
        ("tscale", cfg.tscale().to_string()),
        ("dscale", cfg.dscale().to_string()),
        ("num_sample", cfg.num_sample().to_string()),
        ("num_sample_perbin", cfg.num_sample_perbin().to_string()),
        ("ratio", format!("{:?}", cfg.ratio())),
        ("variant", info.variant.to_string()),
        ("convention", cfg.convention().name().to_string()),
        ("window_mode", window_mode.name().to_string()),
        ("mask_nnz", info.mask_nnz.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Checks an edge file's metadata against what its graph says (`info`, derived from the
/// graph: BM parameters from the node, variant from the widths, non-zeros from the table):
/// a file of another format version, or whose metadata disagrees with its graph, is
/// refused with every difference named. The graph is what runs, so a disagreement means
/// the file was edited or damaged and nothing it claims can be trusted.
pub(crate) fn check_edge_metadata(proto: &pb::ModelProto, info: &ModelInfo) -> Result<(), EngineError> {
    let err = |msg: String| EngineError::new(EngineErrorKind::EdgeMetadata, msg);
    match metadata(proto, "format") {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(err(format!(
                "this edge file is in format `{v}`; this build of bmn-edge reads `{FORMAT_VERSION}` only (convert the standard export again with this version)"
            )))
        }
        None => {
            return Err(err(format!(
                "this file has a BoundaryMatching node but no `{META_PREFIX}format` metadata: it was not written by `bmn-edge convert`"
            )))
        }
    }
    let mut differ = Vec::new();
    for (key, want) in edge_props(info, WindowMode::Sliding) {
        let Some(got) = metadata(proto, &key) else {
            differ.push(format!("`{key}` is missing (the graph says {want})"));
            continue;
        };
        let same = match key.as_str() {
            "format" => true,
            "ratio" => got.parse::<f64>().is_ok_and(|r| r == info.config.ratio()),
            "convention" => Convention::parse(got).is_some(),
            "window_mode" => WindowMode::parse(got).is_some(),
            _ => got == want,
        };
        if !same {
            differ.push(match key.as_str() {
                "convention" => format!("`convention` is `{got}`, not `mmaction2` or `paddle`"),
                "window_mode" => format!("`window_mode` is `{got}`, not `sliding` or `rescale`"),
                _ => format!("`{key}` is {got} but the graph says {want}"),
            });
        }
    }
    if differ.is_empty() {
        Ok(())
    } else {
        Err(err(format!("the edge file's metadata disagrees with its graph: {}", differ.join("; "))))
    }
}
