from django.contrib import admin
from django.urls import path

from board import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", views.health),
    path("", views.index),
    path("notes", views.notes),
    path("jobs", views.jobs),
    path("media/<str:name>", views.media),
]
