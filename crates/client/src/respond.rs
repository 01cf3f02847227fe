//! Incidents, the self-audit, access reviews and evidence.

use rampart_core::wire;
use reqwest::Method;

use crate::{Client, ClientError, segment};

impl Client {
    pub async fn incidents(&self, all: bool) -> Result<Vec<wire::Incident>, ClientError> {
        self.get(&format!("/api/incidents?all={all}")).await
    }

    pub async fn open_incident(
        &self,
        request: &wire::OpenIncident,
    ) -> Result<wire::Incident, ClientError> {
        self.call(Method::POST, "/api/incidents", Some(request))
            .await
    }

    pub async fn incident(&self, id: &str) -> Result<wire::IncidentDetail, ClientError> {
        self.get(&format!("/api/incidents/{}", segment(id))).await
    }

    pub async fn step_incident(
        &self,
        id: &str,
        request: &wire::IncidentStep,
    ) -> Result<wire::Incident, ClientError> {
        let path = format!("/api/incidents/{}/state", segment(id));
        self.call(Method::POST, &path, Some(request)).await
    }

    pub async fn note_incident(
        &self,
        id: &str,
        request: &wire::IncidentNote,
    ) -> Result<wire::Incident, ClientError> {
        let path = format!("/api/incidents/{}/notes", segment(id));
        self.call(Method::POST, &path, Some(request)).await
    }

    pub async fn assign_incident(
        &self,
        id: &str,
        request: &wire::AssignIncident,
    ) -> Result<wire::Incident, ClientError> {
        let path = format!("/api/incidents/{}/owner", segment(id));
        self.call(Method::PUT, &path, Some(request)).await
    }

    pub async fn review_incident(
        &self,
        id: &str,
        request: &wire::IncidentReview,
    ) -> Result<wire::Incident, ClientError> {
        let path = format!("/api/incidents/{}/review", segment(id));
        self.call(Method::POST, &path, Some(request)).await
    }

    pub async fn finish_follow_up(
        &self,
        id: &str,
        number: u32,
    ) -> Result<wire::FollowUp, ClientError> {
        let path = format!("/api/incidents/{}/actions/{number}/done", segment(id));
        self.call(Method::POST, &path, None::<&()>).await
    }

    pub async fn follow_ups(&self, open: bool) -> Result<Vec<wire::FollowUp>, ClientError> {
        self.get(&format!("/api/incidents/actions?open={open}"))
            .await
    }

    pub async fn incident_stats(
        &self,
        from: &str,
        to: &str,
    ) -> Result<wire::IncidentStats, ClientError> {
        self.get(&format!(
            "/api/incidents/stats?from={}&to={}",
            segment(from),
            segment(to)
        ))
        .await
    }
}

impl Client {
    pub async fn doctor(&self) -> Result<wire::DoctorReport, ClientError> {
        self.call(Method::POST, "/api/doctor", None::<&()>).await
    }

    pub async fn access_reviews(&self) -> Result<Vec<wire::AccessReview>, ClientError> {
        self.get("/api/access-reviews").await
    }

    pub async fn record_access_review(
        &self,
        request: &wire::RecordAccessReview,
    ) -> Result<wire::AccessReview, ClientError> {
        self.call(Method::POST, "/api/access-reviews", Some(request))
            .await
    }

    pub async fn export_evidence(
        &self,
        from: &str,
        to: &str,
    ) -> Result<wire::EvidenceBundle, ClientError> {
        let path = format!("/api/evidence?from={}&to={}", segment(from), segment(to));
        self.call_long(Method::POST, &path, None::<&()>).await
    }
}

impl Client {
    pub async fn reports(&self, all: bool) -> Result<Vec<wire::SecurityReport>, ClientError> {
        self.get(&format!("/api/reports?all={all}")).await
    }

    pub async fn report(&self, id: &str) -> Result<wire::SecurityReportDetail, ClientError> {
        self.get(&format!("/api/reports/{}", segment(id))).await
    }

    pub async fn triage_report(
        &self,
        id: &str,
        request: &wire::TriageReport,
    ) -> Result<wire::SecurityReport, ClientError> {
        let path = format!("/api/reports/{}/triage", segment(id));
        self.call(Method::POST, &path, Some(request)).await
    }

    pub async fn close_report(
        &self,
        id: &str,
        request: &wire::CloseReport,
    ) -> Result<wire::SecurityReport, ClientError> {
        let path = format!("/api/reports/{}/close", segment(id));
        self.call(Method::POST, &path, Some(request)).await
    }
}

impl Client {
    pub async fn privacy_sweep(&self) -> Result<wire::PrivacySweep, ClientError> {
        self.call_long(Method::POST, "/api/privacy/sweep", None::<&()>)
            .await
    }
}
