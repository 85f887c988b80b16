/**
 * A completion certificate, public (anyone with the link): learner, course, instructor and
 * completion date; printable (certificate.css hides the app's chrome on paper).
 */
import { useEffect, useState } from 'react';
import { useParams } from 'react-router';
import { api, ApiError, call, type Certificate } from '../../api';
import { Loading } from '../../components/Loading';
import { Alert, Button, PageTitle } from '../../components/ui';
import { asApiError, formatDate } from './common';
import './certificate.css';

export default function CertificatePage() {
  const { certificateId = '' } = useParams();
  const [certificate, setCertificate] = useState<Certificate | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    call(api.GET('/v1/certificates/{certificate_id}', { params: { path: { certificate_id: certificateId } }, signal: abort.signal }))
      .then((data) => setCertificate(data.certificate ?? null))
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(asApiError(e));
      });
    return () => abort.abort();
  }, [certificateId]);

  if (error) return <><PageTitle>Certificate</PageTitle><Alert>{error.code === 'NOT_FOUND' ? 'No such certificate.' : error.message}</Alert></>;
  if (!certificate) return <Loading label="Loading the certificate…" />;
  return (
    <div className="certificate-page">
      <div className="certificate mx-auto max-w-3xl rounded-xl border-4 border-double border-brand-600 bg-white p-6 text-center text-slate-900 sm:p-12 dark:border-brand-500 dark:bg-slate-900 dark:text-slate-100">
        <p className="text-sm tracking-[0.3em] text-slate-600 uppercase dark:text-slate-400">LearnFlow</p>
        <PageTitle>Certificate of completion</PageTitle>
        <p className="text-slate-700 dark:text-slate-300">This certifies that</p>
        <p className="my-3 text-3xl font-semibold break-words" data-testid="learner-name">
          {certificate.learnerName}
        </p>
        <p className="text-slate-700 dark:text-slate-300">completed the course</p>
        <p className="my-3 text-2xl font-semibold break-words" data-testid="course-title">
          {certificate.courseTitle}
        </p>
        {certificate.instructorName && <p className="text-slate-700 dark:text-slate-300">taught by {certificate.instructorName}</p>}
        {certificate.completeTime && (
          <p className="mt-6">
            on <time dateTime={certificate.completeTime}>{formatDate(certificate.completeTime)}</time>
          </p>
        )}
        <p className="mt-8 text-xs text-slate-600 break-all dark:text-slate-400">Certificate {certificate.id}</p>
      </div>
      <p className="no-print mt-6 text-center">
        <Button type="button" onClick={() => window.print()}>
          Print
        </Button>
      </p>
    </div>
  );
}
