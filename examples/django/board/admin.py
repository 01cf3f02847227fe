from django.contrib import admin

from .models import Job, Note

admin.site.register(Note)
admin.site.register(Job)
