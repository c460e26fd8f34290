"""The values a run key is measured against (al_bnn_lab.sweep.run_key), frozen.

A run key hashes only the settings that differ from these values. They were the config schema's
defaults when run keys were introduced and they must never follow a later change of a default:
if a default changed here too, runs made before and after it would share a key with different
numbers. A key added to the schema later gets an entry here with its neutral value (the one that
keeps the behaviour from before the key existed), so the keys of earlier runs stay valid; a test
checks that every schema key has an entry.
"""

RUN_KEY_BASELINE = {
    'al_schedule': {'al_iter': 5, 'num_al_incr': 200, 'num_train_init': 500},
    'data': {'dataset': 'housing',
             'path': None,
             'size_pool': 0,
             'size_test': 0,
             'target': None,
             'test_fraction': 0.2,
             'validation_fraction': 0.0},
    'net_config': {'activation': 'leaky_relu',
                   'center_at_target': True,
                   'clip_gradient': 100.0,
                   'divergence_scale': 1.0,
                   'dropout_rate': 0.0,
                   'input_transform': 'none',
                   'layer_sizes': [100, 100],
                   'learning_rate': 0.0001,
                   'ncp_scale': 0.1,
                   'nll_beta': 0.0,
                   'noise_std': 0.1,
                   'ood_std_prior': None,
                   'parametrization': 'standard',
                   'weight_std': 0.1},
    'parms': {'compare_with': [],
              'ensemble_size': 5,
              'family_kernel': 'mc',
              'family_mode': 'auto',
              'family_sketch_dim': 512,
              'family_transform': 'auto',
              'function_samples': 'joint',
              'gp_noise': 0.01,
              'gpa_dtype': 'float64',
              'gpa_kernel': 'mc',
              'n_mc_samples': 100,
              'name_model': 'bnn',
              'resample_every_round': False,
              'sample_policy': 'gpa',
              'sampling_batch_size': 10},
    'seed': 0,
    'train_schedule': {'batch_size': 16,
                       'batching': 'padded',
                       'calibration': 'none',
                       'calibration_fraction': 0.2,
                       'eval_after_epochs': 10,
                       'learning_rate_schedule': 'constant',
                       'log_after_epochs': 500,
                       'min_steps': 0,
                       'num_epochs': 1000,
                       'num_steps': 0,
                       'retrain_from': 'previous'}}
