"""Training of the toy models on the toy world: the shared loop (`loop`), streamed data (`stream`), one module per
model (`clip`, `oracle`; the prior, decoder, upsampler and GLIDE trainers add theirs), and their evaluations.

Entry points are the ``harness train ...`` subcommands (`harness.commands.train`).
"""
