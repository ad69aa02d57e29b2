//! An index over an ONNX graph: producers, consumers, constants, ancestors.

use super::wire::Deferred;
use super::*;

/// Where the dense mask lives.
#[derive(Debug, Clone)]
pub(crate) enum MaskRef {
    /// A deferred initializer (index into `ModelFile::deferred`).
    Deferred(usize),
    /// An initializer in the decoded graph.
    Initializer(String),
    /// A `Constant` node's value (node index).
    ConstantNode(usize),
}

pub(crate) struct GraphIndex<'a> {
    pub graph: &'a pb::GraphProto,
    pub(crate) producer: HashMap<&'a str, usize>,
    pub(crate) consumers: HashMap<&'a str, Vec<usize>>,
    initializers: HashMap<&'a str, usize>,
    pub(crate) deferred: HashMap<&'a str, usize>,
}

impl<'a> GraphIndex<'a> {
    pub(crate) fn new(graph: &'a pb::GraphProto, deferred: &'a [Deferred]) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for inp in n.input.iter().filter(|s| !s.is_empty()) {
                consumers.entry(inp.as_str()).or_default().push(i);
            }
        }
        let initializers = graph.initializer.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        let deferred = deferred.iter().enumerate().map(|(i, d)| (d.name.as_str(), i)).collect();
        GraphIndex { graph, producer, consumers, initializers, deferred }
    }

    pub(crate) fn consumers(&self, name: &str) -> &[usize] {
        self.consumers.get(name).map_or(&[], |v| v.as_slice())
    }

    pub(crate) fn is_output(&self, name: &str) -> bool {
        self.graph.output.iter().any(|o| o.name == name)
    }

    /// The only consumer of `name`, if it has exactly one and is not a graph output.
    pub(crate) fn single_consumer_ix(&self, name: &str) -> Option<usize> {
        match self.consumers(name) {
            [i] if !self.is_output(name) => Some(*i),
            _ => None,
        }
    }

    pub(crate) fn is_const(&self, name: &str) -> bool {
        self.initializers.contains_key(name)
            || self.deferred.contains_key(name)
            || self.producer.get(name).is_some_and(|&i| self.graph.node[i].op_type == "Constant")
    }

    /// A constant's tensor proto (initializer or `Constant` node value).
    pub(crate) fn const_tensor(&self, name: &str) -> Option<&'a pb::TensorProto> {
        if let Some(&i) = self.initializers.get(name) {
            return Some(&self.graph.initializer[i]);
        }
        let &p = self.producer.get(name)?;
        let node = &self.graph.node[p];
        if node.op_type != "Constant" {
            return None;
        }
        node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref())
    }

    /// A constant's dims.
    pub(crate) fn const_dims(&self, name: &str, deferred: &[Deferred]) -> Option<Vec<i64>> {
        if let Some(&i) = self.deferred.get(name) {
            return Some(deferred[i].dims.clone());
        }
        if let Some((q, _, _)) = self.dequantized(name) {
            return Some(q.dims.clone());
        }
        self.const_tensor(name).map(|t| t.dims.clone())
    }

    /// `name` is `DequantizeLinear(q, scale[, zero_point])` of constants (QDQ form): those.
    pub(crate) fn dequantized(
        &self,
        name: &str,
    ) -> Option<(&'a pb::TensorProto, &'a pb::TensorProto, Option<&'a pb::TensorProto>)> {
        let &p = self.producer.get(name)?;
        let node = &self.graph.node[p];
        if node.op_type != "DequantizeLinear" {
            return None;
        }
        let q = self.const_tensor(node.input.first()?)?;
        let scale = self.const_tensor(node.input.get(1)?)?;
        let zp = node.input.get(2).filter(|s| !s.is_empty()).and_then(|z| self.const_tensor(z));
        Some((q, scale, zp))
    }

    pub(crate) fn mask_ref(&self, name: &str) -> Option<MaskRef> {
        if let Some(&i) = self.deferred.get(name) {
            return Some(MaskRef::Deferred(i));
        }
        if self.initializers.contains_key(name) {
            return Some(MaskRef::Initializer(name.to_string()));
        }
        self.producer.get(name).map(|&p| MaskRef::ConstantNode(p))
    }

    /// Nodes needed to compute `targets`, stopping at `stops` (graph order).
    pub(crate) fn ancestors(&self, targets: &[&str], stops: &[&str]) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = targets.to_vec();
        let mut visited_names = HashSet::new();
        while let Some(name) = stack.pop() {
            if stops.contains(&name) || !visited_names.insert(name) {
                continue;
            }
            if let Some(&p) = self.producer.get(name) {
                if seen.insert(p) {
                    for i in self.graph.node[p].input.iter().filter(|s| !s.is_empty()) {
                        stack.push(i.as_str());
                    }
                }
            }
        }
        let mut v: Vec<usize> = seen.into_iter().collect();
        v.sort_unstable();
        v
    }

    /// Tensor names reachable forward from `from`.
    pub(crate) fn descendants(&self, from: &str) -> HashSet<&'a str> {
        let mut out = HashSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(name) = stack.pop() {
            for &c in self.consumers(&name) {
                for o in &self.graph.node[c].output {
                    if out.insert(o.as_str()) {
                        stack.push(o.clone());
                    }
                }
            }
        }
        out
    }

    /// Graph inputs that are not initializers (legacy exports list every weight as an input).
    pub(crate) fn data_inputs(&self) -> Vec<&'a pb::ValueInfoProto> {
        self.graph
            .input
            .iter()
            .filter(|i| {
                !self.initializers.contains_key(i.name.as_str()) && !self.deferred.contains_key(i.name.as_str())
            })
            .collect()
    }
}

/// Refuses what tract would refuse only once it builds the model, so that `inspect` and
/// `convert` refuse it as `detect` does: an initializer stored in an external file (never
/// read: the model is one file), and a graph whose nodes are not acyclic (a node fed, through
/// any path, by its own output; a self-loop is the shortest).
pub(crate) fn check_buildable(graph: &pb::GraphProto) -> Result<(), EngineError> {
    if let Some(t) = graph.initializer.iter().find(|t| t.data_location == Some(1) || !t.external_data.is_empty()) {
        return Err(EngineError::new(
            EngineErrorKind::Unsupported,
            format!("tensor `{}` is stored in an external file, which is not supported", t.name),
        ));
    }
    // Kahn's algorithm over the nodes: a node is ready once every input some node produces
    // has been produced.
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(k, n)| n.output.iter().filter(|o| !o.is_empty()).map(move |o| (o.as_str(), k)))
        .collect();
    let mut waiting: Vec<usize> = vec![0; graph.node.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    for (k, n) in graph.node.iter().enumerate() {
        for i in &n.input {
            if let Some(&p) = producer.get(i.as_str()) {
                waiting[k] += 1;
                users[p].push(k);
            }
        }
    }
    let mut ready: Vec<usize> = (0..graph.node.len()).filter(|&k| waiting[k] == 0).collect();
    let mut done = 0;
    while let Some(k) = ready.pop() {
        done += 1;
        for &u in &users[k] {
            waiting[u] -= 1;
            if waiting[u] == 0 {
                ready.push(u);
            }
        }
    }
    if done < graph.node.len() {
        let k = (0..graph.node.len()).find(|&k| waiting[k] > 0).unwrap_or(0);
        let n = &graph.node[k];
        return Err(EngineError::new(
            EngineErrorKind::NotOnnx,
            format!(
                "malformed graph: node {k} ({}, `{}`) is on a cycle (it depends on its own output); an ONNX graph is acyclic",
                n.op_type, n.name
            ),
        ));
    }
    Ok(())
}

/// ONNX's single-assignment rule: every tensor name is produced once — by one node output,
/// or as a graph input or initializer. A graph that breaks it is ambiguous (which producer
/// does a consumer read?), and the BM layer search and the graph surgery would each pick
/// one: fuzzing found a file whose conversion succeeded and wrote an edge file without its
/// BM node (finding F7, `tests/fuzz/README.md`). Refused before anything is searched.
pub(crate) fn check_single_assignment(graph: &pb::GraphProto, deferred: &[Deferred]) -> Result<(), EngineError> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut define = |name: &str, what: String| -> Result<(), EngineError> {
        if name.is_empty() {
            return Ok(());
        }
        if let Some(first) = seen.insert(name.to_string(), what.clone()) {
            return Err(EngineError::new(
                EngineErrorKind::NotOnnx,
                format!(
                    "malformed graph: tensor `{name}` is defined twice ({first}, then {what}); ONNX defines each name once"
                ),
            ));
        }
        Ok(())
    };
    // Initializers: the decoded ones and those the wire reader kept aside (the mask).
    let inits: Vec<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).chain(deferred.iter().map(|d| d.name.as_str())).collect();
    for i in &graph.input {
        // An initializer may also be listed as a graph input (opset < 9 exports, or
        // `keep_initializers_as_inputs`): the two are one definition.
        if !inits.contains(&i.name.as_str()) {
            define(&i.name, "a graph input".into())?;
        }
    }
    for t in inits {
        define(t, "an initializer".into())?;
    }
    for (k, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            define(o, format!("node {k} ({})", n.op_type))?;
        }
    }
    Ok(())
}
