import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createBrowserRouter, RouterProvider } from 'react-router';
import { AuthProvider } from './auth/AuthContext';
import './index.css';
import { routes } from './routes/routes';
import { applyTheme, storedChoice, ThemeProvider } from './theme/ThemeContext';

// Before the first paint, from this module (the CSP allows no inline script in index.html).
applyTheme(storedChoice());

const router = createBrowserRouter(routes);
const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');

createRoot(root).render(
  <StrictMode>
    <ThemeProvider>
      <AuthProvider>
        <RouterProvider router={router} />
      </AuthProvider>
    </ThemeProvider>
  </StrictMode>,
);
