//! `brighten`: add amount to colour channels, saturating, as `cv2.add(img, amount) per channel`.

use super::prelude::*;
use crate::ops::point;

/// Saturating add.
#[derive(Clone, Debug, PartialEq)]
pub struct Brighten {
    /// Amount (x257 on 16-bit).
    pub amount: u8,
}

impl Operation for Brighten {
    const SPEC: OpSpec = OpSpec {
        name: "brighten",
        aliases: &[],
        summary: "add amount to colour channels, saturating",
        params: &[int("amount", 0, 255, Some("60"), "amount to add (x257 on 16-bit)")],
        keeps_16bit: true,
        reference: "cv2.add(img, amount) per channel",
        tolerance: EXACT,
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Brighten {
            amount: p.i("amount") as u8,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("amount", Value::Int(self.amount.into()))]
    }

    fn cost_weight(&self) -> f64 {
        0.1
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, _: u64) -> u64 {
        s.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(point::add(img.into_owned(), self.amount as i32))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::AddSat(self.amount as i32))
    }
}
