from django.db import models


class Note(models.Model):
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)


class Job(models.Model):
    """Work the web process queues in the database for the worker."""

    payload = models.TextField()
    done = models.BooleanField(default=False)
    result = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
