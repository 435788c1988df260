//! stub
use super::*;
use crate::metric::Sample;
/// stub
pub struct Evaluator;
impl Evaluator {
    /// stub
    pub fn new(_rules: &[RuleSpec]) -> Evaluator {
        Evaluator
    }
    /// stub
    pub fn evaluate(
        &mut self,
        _rules: &[RuleSpec],
        _samples: &[Sample],
        _now: Millis,
        _emit: &mut dyn FnMut(Transition),
    ) {
    }
    /// stub
    pub fn view(&self, _rules: &[RuleSpec], _out: &mut dyn FnMut(SeriesView)) {}
}
