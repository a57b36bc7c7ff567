"""The models (one file each) and what every command that samples them shares.

Importing this package imports no torch: the command line reads `SAMPLING_TEMPERATURE` to
show it in ``--help`` before it loads any model.
"""

# The sampling temperature tau that `quickdraw sample`, `judge score` and `grade serve` use
# unless told otherwise (and `grading.sources` and `eval.judge` too). 1.0 samples the model's
# own distribution, which is what a judge score or a human grading should measure; lower is
# tidier (sketch-rnn: sharper mixtures, see `SketchRNN.sample`; DRAW: z drawn from
# N(0, tau^2 I)), and a figure at another tau says which one it used.
SAMPLING_TEMPERATURE = 1.0
