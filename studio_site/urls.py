"""URL map of the studio: pages, accounts, admin and the API.

Websocket routes live in ``routing.py``.
"""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from characters.api import CharacterViewSet
from media_jobs.api import JobViewSet
from media_jobs.metrics import metrics_view
from media_jobs.webhook_api import WebhookViewSet
from projects.api import AssetViewSet, ProjectViewSet, RenderViewSet
from projects.batch_api import BatchViewSet
from projects.review_api import ReviewViewSet
from projects.storyboard_api import ShotView, StoryboardPlanView, StoryboardView

from . import accounts

# No ``.json``-style suffix routes: one URL per resource keeps the schema plain.
router = DefaultRouter()
router.include_format_suffixes = False
router.register("projects", ProjectViewSet, basename="project")
router.register("assets", AssetViewSet, basename="asset")
router.register("jobs", JobViewSet, basename="job")
router.register("renders", RenderViewSet, basename="render")
router.register("batches", BatchViewSet, basename="batch")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("characters", CharacterViewSet, basename="character")
router.register("reviews", ReviewViewSet, basename="review")

api_patterns = [
    path("token/", accounts.obtain_auth_token, name="token"),
    # Behind login (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]): the schema maps
    # every endpoint, which only the studio's users need.
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path(
        "projects/<int:pk>/storyboard/",
        StoryboardView.as_view(),
        name="project-storyboard",
    ),
    path(
        "projects/<int:pk>/storyboard/plan/",
        StoryboardPlanView.as_view(),
        name="project-storyboard-plan",
    ),
    path(
        "projects/<int:pk>/storyboard/shots/<int:index>/",
        ShotView.as_view(),
        name="project-storyboard-shot",
    ),
    path("", include(router.urls)),
]

account_patterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    # Django's LogoutView accepts POST only, so a link or prefetch cannot log out.
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/change/",
        auth_views.PasswordChangeView.as_view(
            form_class=accounts.StudioPasswordChangeForm
        ),
        name="password_change",
    ),
    path(
        "password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("signup/", accounts.signup, name="signup"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="projects:list", permanent=False)),
    path("accounts/", include(account_patterns)),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include((api_patterns, "api"))),
    path("jobs/", include("media_jobs.urls")),
    path("", include("characters.urls")),
    path("", include("projects.urls")),
]
