//! Gradient and optimizer parity with PyTorch autograd (scripts/make_fixtures.py, train.safetensors):
//! the joint ELECTRA loss for fixed masked positions and fixed sampled replacements, every
//! parameter's gradient by HF name (relative 1e-4), and the losses and weights after 5 AdamW
//! steps (relative 1e-4).

mod common;
use common::train_fixture::{five_steps_match, gradients_match};
use electra::backend::Device;

#[test]
fn joint_loss_and_every_gradient_match_autograd() {
    gradients_match(Device::Cpu, 0);
}

#[test]
fn five_adamw_steps_match() {
    five_steps_match(Device::Cpu, 0);
}
