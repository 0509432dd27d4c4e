"""What the stages share (data splits, model saving, model selection, feature pipelines, significance,
the parameter declarations their notebooks' parameters cells are generated from). Notebooks call the stage
modules, not these.
"""
