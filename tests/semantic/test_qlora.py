"""4-bit QLoRA on the CPU for several VLM families: what trains, what learns, what stays put."""

from __future__ import annotations

import pytest
import torch

from aligngemini.datamodules.semantic import SemanticDataModule
from aligngemini.models.semantic import AdapterSettings, build_semantic_vlm
from semantic_constants import SHORT_PROMPTS

FAMILIES = ["qwen2_5_vl", "smolvlm", "llava"]


@pytest.mark.parametrize("family", FAMILIES)
def test_qlora_overfits_and_only_adapters_change(tiny_vlm_dir, semantic_manifest, family):
    import bitsandbytes as bnb

    folder = tiny_vlm_dir(family)
    torch.manual_seed(0)
    model = build_semantic_vlm(folder, quantization="nf4", adapter=AdapterSettings(r=8, alpha=32, dropout=0.0))
    linear4bit = {n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert linear4bit and all(model.family.language_model in n for n in linear4bit)
    assert not any(p in n for n in linear4bit for p in model.family.skip_quantization)  # vision + head stay dense

    data = SemanticDataModule(model_id=folder, root=str(semantic_manifest), batch_size=4, **SHORT_PROMPTS)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    losses = []
    for _ in range(5):
        _, loss = model.score_and_answer_loss(batch.inputs, batch.token_labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses

    after = model.state_dict()  # 4-bit weights and their quantisation statistics included
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == trainable

    model.eval()
    records = data.records["test"]
    labelled = data.collate_units([data.load_unit(u, None, False) for u in data.make_units(records, "test")], [])
    prompts = data.collate_units([data.load_unit(u, None, False) for u in data.make_units(records, "predict")], [])
    with torch.no_grad():  # one forward over prompt + answer scores like a prompt-only pass
        training_path, _ = model.score_and_answer_loss(labelled.inputs, labelled.token_labels)
        prompt_only = model.score(prompts.prompt_inputs)
    torch.testing.assert_close(training_path, prompt_only, rtol=1e-4, atol=1e-4)
