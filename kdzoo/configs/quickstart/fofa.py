# FOFA / PAT (docs/methods/fofa.md): ViT teacher -> CNN student on embedded MNIST. RAA (M = 64 queries) blends the
# four CNN stages and regresses the AFP-prompted ViT stages with HCL; KD at T = 1 from the un-prompted ViT; the
# KL regulariser keeps the prompted ViT's predictions close to the bare one's; all weights 1 (docs/methods/fofa.md, code
# defaults). The AFP adapter prompts the ViT's stage inputs (before blocks 0, 1, 2 and 5 of its 6) with the
# previous step's student-minus-teacher feedback, so the train loader keeps drop_last=True (the MNIST base).
# Quick-start scale: RAA width 128 instead of 512, and 2 epochs, because every step runs the teacher twice and
# back-propagates through it into the prompts (about 5x a KD step on CPU). code_exact=True reproduces the
# official code's four bugs.
_base_ = ['./_distill.py']
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
model = dict(
    distillers=[dict(type='fofa', num_queries=64, dim=128, temperature=1.0)],
    adapters=[dict(type='afp', target='vit')],
)
