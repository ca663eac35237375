from django.db import migrations


def forwards(apps, schema_editor):
    from reports.scheme import load_scheme

    Queue = apps.get_model("reports", "Queue")
    queue, _ = Queue.objects.get_or_create(
        slug="general", defaults={"name": "General", "is_default": True,
                                  "description": "Every new case starts here."})
    apps.get_model("reports", "Case").objects.filter(queue__isnull=True).update(queue=queue)
    load_scheme(apps.get_model("reports", "Verdict"), apps.get_model("reports", "ClassificationOption"),
                apps.get_model("reports", "PolicyClause"), apps.get_model("reports", "VerdictMapping"))


class Migration(migrations.Migration):
    dependencies = [("reports", "0002_review")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
