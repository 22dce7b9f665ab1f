from django.db import migrations


def resync_models(apps, schema_editor):
    """The plan's models again (workers/modelstore/registry.yaml): single-file
    and GGUF models name their base pipeline, video models their frame step
    and size, cloud models their service (params "api"), and the Wan 2.1 I2V
    pipeline parts are new. What an operator set (enabled, revision) stays."""
    from media_jobs.registry import sync_models

    sync_models(apps.get_model("media_jobs", "ModelSpec"))


class Migration(migrations.Migration):
    dependencies = [
        ("media_jobs", "0008_worker_installed_models"),
    ]

    operations = [migrations.RunPython(resync_models, migrations.RunPython.noop)]
